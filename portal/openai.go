package portal

import (
	"fmt"

	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/portal/openaiapi"
)

// newOpenAI builds the OpenAI-compatible endpoint served at /v1 next to
// the REST API, admitting the same API keys through it. The model defaults
// are the operator's WADDLEBOT_AI_* settings, as the AI module reads them.
func (p *Portal) newOpenAI() (*openaiapi.Server, error) {
	o, err := openaiapi.New(openaiapi.Config{Store: p.st, API: p.api,
		Models: ai.NewResolver(p.st, ai.EnvDefaults(), p.cfg.Clock.Now, p.cfg.Logger),
		Clock:  p.cfg.Clock, Logger: p.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("portal: unable to build the OpenAI-compatible endpoint: %w", err)
	}
	return o, nil
}

func (p *Portal) mountOpenAI(srv *ops.Server) {
	srv.Handle(openaiapi.Base+"/", p.openai)
}
