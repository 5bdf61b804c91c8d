package portal

import (
	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/portal/openaiapi"
	"github.com/waddlebot/waddlebot/portal/restapi"
)

// mountOpenAI serves the OpenAI-compatible endpoint at /v1 next to the
// REST API, admitting the same API keys through it. The model defaults are
// the operator's WADDLEBOT_AI_* settings, as the AI module reads them.
func (p *Portal) mountOpenAI(srv *ops.Server) {
	api, ok := p.api.(*restapi.Server)
	if !ok {
		return
	}
	o, err := openaiapi.New(openaiapi.Config{Store: p.st, API: api,
		Models: ai.NewResolver(p.st, ai.EnvDefaults(), p.cfg.Clock.Now, p.cfg.Logger),
		Clock:  p.cfg.Clock, Logger: p.cfg.Logger})
	if err != nil {
		p.log.Error("portal: unable to build the OpenAI-compatible endpoint", logging.Err(err))
		return
	}
	srv.Handle(openaiapi.Base+"/", o)
}
