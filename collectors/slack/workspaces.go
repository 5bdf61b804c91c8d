package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// secretOwner owns the Slack bot tokens in the secrets table.
const secretOwner = "slack"

// Workspace statuses.
const (
	StatusInstalled   = "installed"
	StatusUninstalled = "uninstalled"
)

// Workspace is one slack_workspaces row: a team the app was installed in.
type Workspace struct {
	TeamID    string
	TeamName  string
	BotUserID string
	// InstalledBy is the Slack user who went through the install consent:
	// the portal lets that person attach the workspace to a community.
	InstalledBy string
	Status      string
	Reason      string
	InstalledAt time.Time
	UpdatedAt   time.Time
}

// WorkspaceStore implements Workspaces over PostgreSQL (slack_workspaces,
// bot tokens encrypted in secrets). A static bot token (SLACK_BOT_TOKEN)
// serves its own workspace when that workspace was not installed through
// /connect/slack: auth.test tells which team and bot user it belongs to.
type WorkspaceStore struct {
	st          *store.Store
	apiURL      string
	httpClient  *http.Client
	staticToken string
	log         *slog.Logger

	mu sync.Mutex
	// static is what auth.test said about staticToken; nil until asked.
	static *slack.AuthTestResponse
	// staticRefused is set once Slack refused staticToken (revoked,
	// invalid) or its workspace was disconnected: it is not used again
	// until a restart.
	staticRefused bool
}

// NewWorkspaceStore makes the store. apiURL is the Web API base ("" for
// Slack's own); staticBotToken may be empty; httpClient nil means a client
// with a 30-second timeout.
func NewWorkspaceStore(st *store.Store, apiURL string, staticBotToken string, httpClient *http.Client) *WorkspaceStore {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &WorkspaceStore{st: st, apiURL: normalizeAPIURL(apiURL), httpClient: httpClient,
		staticToken: strings.TrimSpace(staticBotToken),
		log:         slog.Default().With(logging.KeyPlatform, platformName, logging.KeyPart, "workspaces")}
}

// client makes a Web API client acting with token.
func (w *WorkspaceStore) client(token string) *slack.Client {
	return slack.New(token, slack.OptionAPIURL(w.apiURL), slack.OptionHTTPClient(w.httpClient))
}

func tokenSecretName(teamID string) string { return "bot." + teamID }

// Save records an installed workspace and its bot token, replacing an
// earlier install of the same team.
func (w *WorkspaceStore) Save(ctx context.Context, ws Workspace, botToken string) error {
	if ws.TeamID == "" || botToken == "" {
		return errors.New("slack: a workspace needs a team id and a bot token")
	}
	err := w.st.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO slack_workspaces (team_id, team_name, bot_user_id, installed_by, status, reason, installed_at, updated_at)
			VALUES ($1, $2, $3, $4, 'installed', '', now(), now())
			ON CONFLICT (team_id) DO UPDATE
			SET team_name = EXCLUDED.team_name, bot_user_id = EXCLUDED.bot_user_id, status = 'installed',
			    installed_by = CASE WHEN EXCLUDED.installed_by = '' THEN slack_workspaces.installed_by ELSE EXCLUDED.installed_by END,
			    reason = '', installed_at = now(), updated_at = now()`,
			ws.TeamID, ws.TeamName, ws.BotUserID, ws.InstalledBy); err != nil {
			return fmt.Errorf("slack: unable to save workspace %s: %w", ws.TeamID, err)
		}
		return w.st.PutSecret(ctx, tx, secretOwner, tokenSecretName(ws.TeamID), []byte(botToken))
	})
	if err != nil {
		return err
	}
	w.log.Info("slack: workspace installed", logging.KeyID, ws.TeamID, "team_name", ws.TeamName)
	return nil
}

// Workspace reads a team's row; ErrNotInstalled when there is none.
func (w *WorkspaceStore) Workspace(ctx context.Context, teamID string) (Workspace, error) {
	ws := Workspace{TeamID: teamID}
	err := w.st.Pool().QueryRow(ctx, `
		SELECT team_name, bot_user_id, installed_by, status, reason, installed_at, updated_at
		FROM slack_workspaces WHERE team_id = $1`, teamID).
		Scan(&ws.TeamName, &ws.BotUserID, &ws.InstalledBy, &ws.Status, &ws.Reason, &ws.InstalledAt, &ws.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Workspace{}, fmt.Errorf("%w: team %s", ErrNotInstalled, teamID)
	}
	if err != nil {
		return Workspace{}, fmt.Errorf("slack: unable to read workspace %s: %w", teamID, err)
	}
	return ws, nil
}

// BotToken returns the team's bot token: the installed one, else the static
// token when it belongs to the team. An empty teamID means the static
// token's workspace.
func (w *WorkspaceStore) BotToken(ctx context.Context, teamID string) (string, error) {
	if teamID != "" {
		token, err := w.st.Secret(ctx, secretOwner, tokenSecretName(teamID))
		if err == nil {
			return string(token), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("slack: unable to read the bot token of %s: %w", teamID, err)
		}
	}
	id, err := w.staticIdentity(ctx)
	if err != nil {
		return "", err
	}
	if id != nil && (teamID == "" || id.TeamID == teamID) {
		return w.staticToken, nil
	}
	return "", fmt.Errorf("%w: team %s", ErrNotInstalled, teamID)
}

// BotUserID returns the bot's user id in the team, asking auth.test (and
// remembering the answer) when the install did not record it.
func (w *WorkspaceStore) BotUserID(ctx context.Context, teamID string) (string, error) {
	ws, err := w.Workspace(ctx, teamID)
	switch {
	case err == nil && ws.Status == StatusInstalled && ws.BotUserID != "":
		return ws.BotUserID, nil
	case err == nil && ws.Status == StatusInstalled:
		token, err := w.BotToken(ctx, teamID)
		if err != nil {
			return "", err
		}
		resp, err := w.client(token).AuthTestContext(ctx)
		if err != nil {
			return "", fmt.Errorf("slack: unable to learn the bot user of %s (auth.test): %w", teamID, err)
		}
		if _, err := w.st.Pool().Exec(ctx, `UPDATE slack_workspaces SET bot_user_id = $2, updated_at = now() WHERE team_id = $1`,
			teamID, resp.UserID); err != nil {
			// Still the right answer; it is asked for again next time.
			w.log.Warn("slack: unable to remember the bot user", logging.KeyID, teamID, logging.Err(err))
		}
		return resp.UserID, nil
	case err != nil && !errors.Is(err, ErrNotInstalled):
		return "", err
	}
	id, err := w.staticIdentity(ctx)
	if err != nil {
		return "", err
	}
	if id != nil && (teamID == "" || id.TeamID == teamID) {
		return id.UserID, nil
	}
	return "", fmt.Errorf("%w: team %s", ErrNotInstalled, teamID)
}

// Disconnect forgets the team's token and marks it uninstalled; a static
// token of that team is not used again either.
func (w *WorkspaceStore) Disconnect(ctx context.Context, teamID, reason string) error {
	if teamID == "" {
		// A reply without a team went out with the static token.
		w.mu.Lock()
		if w.static != nil {
			teamID = w.static.TeamID
		}
		w.mu.Unlock()
		if teamID == "" {
			return errors.New("slack: Disconnect needs a team id")
		}
	}
	// The token goes first: once it is gone the team is not installed,
	// whatever happens to the row.
	if err := w.st.DeleteSecret(ctx, secretOwner, tokenSecretName(teamID)); err != nil {
		return fmt.Errorf("slack: unable to disconnect %s: %w", teamID, err)
	}
	if _, err := w.st.Pool().Exec(ctx, `
		INSERT INTO slack_workspaces (team_id, status, reason) VALUES ($1, 'uninstalled', $2)
		ON CONFLICT (team_id) DO UPDATE SET status = 'uninstalled', reason = EXCLUDED.reason, updated_at = now()`,
		teamID, reason); err != nil {
		return fmt.Errorf("slack: unable to mark %s uninstalled: %w", teamID, err)
	}
	w.mu.Lock()
	if w.static != nil && w.static.TeamID == teamID {
		w.staticRefused = true
	}
	w.mu.Unlock()
	w.log.Info("slack: workspace disconnected", logging.KeyID, teamID, logging.KeyReason, reason)
	return nil
}

// staticIdentity is auth.test's answer for the static token, asked once;
// nil when there is no static token or Slack refused it.
func (w *WorkspaceStore) staticIdentity(ctx context.Context) (*slack.AuthTestResponse, error) {
	if w.staticToken == "" {
		return nil, nil
	}
	// Held across the call so concurrent first sends ask Slack once.
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.staticRefused {
		return nil, nil
	}
	if w.static != nil {
		return w.static, nil
	}
	resp, err := w.client(w.staticToken).AuthTestContext(ctx)
	if err != nil {
		var refused slack.SlackErrorResponse
		if errors.As(err, &refused) {
			w.staticRefused = true
			w.log.Error("slack: SLACK_BOT_TOKEN refused by auth.test; it is not used", logging.KeyReason, refused.Err)
			return nil, nil
		}
		return nil, fmt.Errorf("slack: unable to check SLACK_BOT_TOKEN (auth.test): %w", err)
	}
	if resp.TeamID == "" {
		return nil, errors.New("slack: auth.test named no team for SLACK_BOT_TOKEN")
	}
	w.static = resp
	return resp, nil
}
