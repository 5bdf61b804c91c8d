package portal

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/actions/reputation"
	"github.com/waddlebot/waddlebot/internal/store"
)

// Aliases.

// aliasRow is an alias with its command as users type it.
type aliasRow struct {
	store.Alias
	Display string
}

type aliasesData struct {
	Access  access
	Prefix  string
	Aliases []aliasRow
	Name    string // the add form, kept when refused
	Command string
	Error   string
	Added   string
}

func (p *Portal) aliasesPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	p.renderAliases(w, r, a, http.StatusOK, aliasesData{Added: r.URL.Query().Get("added")})
}

func (p *Portal) renderAliases(w http.ResponseWriter, r *http.Request, a access, status int, d aliasesData) {
	list, err := p.st.AliasList(r.Context(), a.Community.ID)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "list aliases", err)
		return
	}
	d.Access, d.Prefix = a, a.Community.Prefix
	for _, al := range list {
		shown := al.Target
		if !strings.HasPrefix(shown, "#") {
			shown = a.Community.Prefix + shown
		}
		d.Aliases = append(d.Aliases, aliasRow{Alias: al, Display: shown})
	}
	p.render(w, r, sessionOf(r.Context()), status, "aliases", "Aliases of "+a.Community.Name, d)
}

// refused carries the alias module's message for a refused change out of
// the transaction, rolling it back.
type refused struct{ text string }

func (e refused) Error() string { return e.text }

func (p *Portal) addAlias(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	d := aliasesData{Name: strings.TrimSpace(r.PostFormValue("name")), Command: strings.TrimSpace(r.PostFormValue("command"))}
	var name string
	err := p.st.PortalAlias(r.Context(), func(tx pgx.Tx) (store.AuditEntry, error) {
		n, target, problem, err := alias.Check(r.Context(), p.st, tx, a.Community.ID, a.Community.Prefix, d.Name, d.Command, 0)
		if err != nil {
			return store.AuditEntry{}, err
		}
		if problem != "" {
			return store.AuditEntry{}, refused{problem}
		}
		// Check holds the community's alias lock, so only a writer that
		// skips it can win this race; the refusal rolls everything back.
		err = p.st.AddAlias(r.Context(), tx, store.Alias{CommunityID: a.Community.ID, Name: n, Target: target, CreatedBy: ps.User.DisplayName})
		if errors.Is(err, store.ErrConflict) {
			return store.AuditEntry{}, refused{fmt.Sprintf("Alias %s%s exists already.", a.Community.Prefix, n)}
		}
		if err != nil {
			return store.AuditEntry{}, err
		}
		name = n
		det := from(r, ps)
		det["before"], det["after"] = nil, map[string]any{"target": target}
		return store.AuditEntry{CommunityID: a.Community.ID, Actor: actor(ps), Action: "alias.add", Target: n, Details: det}, nil
	})
	var why refused
	if errors.As(err, &why) {
		d.Error = why.text
		p.renderAliases(w, r, a, http.StatusBadRequest, d)
		return
	}
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "add alias", err)
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/aliases?added="+name, http.StatusSeeOther)
}

func (p *Portal) removeAlias(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	name := r.PathValue("name")
	err := p.st.PortalAlias(r.Context(), func(tx pgx.Tx) (store.AuditEntry, error) {
		if err := alias.Lock(r.Context(), tx, a.Community.ID); err != nil {
			return store.AuditEntry{}, err
		}
		var target string
		err := tx.QueryRow(r.Context(), `SELECT target FROM aliases WHERE community_id = $1 AND name = $2`, a.Community.ID, name).Scan(&target)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.AuditEntry{}, refused{fmt.Sprintf("There is no alias %s%s.", a.Community.Prefix, name)}
		}
		if err != nil {
			return store.AuditEntry{}, fmt.Errorf("portal: unable to read alias: %w", err)
		}
		if err := p.st.RemoveAlias(r.Context(), tx, a.Community.ID, name); err != nil {
			return store.AuditEntry{}, err
		}
		det := from(r, ps)
		det["before"], det["after"] = map[string]any{"target": target}, nil
		return store.AuditEntry{CommunityID: a.Community.ID, Actor: actor(ps), Action: "alias.remove", Target: name, Details: det}, nil
	})
	var why refused
	if errors.As(err, &why) {
		p.renderAliases(w, r, a, http.StatusNotFound, aliasesData{Error: why.text})
		return
	}
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "remove alias", err)
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/aliases", http.StatusSeeOther)
}

// Quotes.

const quotesPerPage = 25

type quotesData struct {
	Access           access
	Quotes           []store.Quote
	Page, Pages      int
	Prev, Next       int // 0: none
	Total            int
	Text, Author     string
	Error, Done      string
	MaxText, MaxAuth int
}

func (p *Portal) quotesPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	d := quotesData{Page: page}
	switch q := r.URL.Query(); {
	case q.Get("added") != "":
		d.Done = "Quote #" + q.Get("added") + " added."
	case q.Get("deleted") != "":
		d.Done = "Quote #" + q.Get("deleted") + " deleted."
	}
	p.renderQuotes(w, r, a, http.StatusOK, d)
}

func (p *Portal) renderQuotes(w http.ResponseWriter, r *http.Request, a access, status int, d quotesData) {
	if d.Page < 1 {
		d.Page = 1
	}
	list, total, err := p.st.Quotes(r.Context(), a.Community.ID, (d.Page-1)*quotesPerPage, quotesPerPage)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "list quotes", err)
		return
	}
	d.Access, d.Quotes, d.Total = a, list, total
	d.Pages = max(1, (total+quotesPerPage-1)/quotesPerPage)
	if d.Page > 1 {
		d.Prev = min(d.Page-1, d.Pages)
	}
	if d.Page < d.Pages {
		d.Next = d.Page + 1
	}
	d.MaxText, d.MaxAuth = memories.MaxQuoteLength, memories.MaxAuthorLength
	p.render(w, r, sessionOf(r.Context()), status, "quotes", "Quotes of "+a.Community.Name, d)
}

// quoteProblem mirrors the memories module's rule for text from chat: the
// same lengths, and nothing a chat line could not carry.
func quoteProblem(text, what string, limit int) string {
	if !utf8.ValidString(text) {
		return fmt.Sprintf("That %s is not valid UTF-8 text.", what)
	}
	if n := utf8.RuneCountInString(text); n > limit {
		return fmt.Sprintf("That %s is %d characters long; the most is %d.", what, n, limit)
	}
	for _, c := range text {
		if c != '\t' && unicode.IsControl(c) || c == '\u2028' || c == '\u2029' {
			return fmt.Sprintf("That %s contains a control character or line break (U+%04X); please send plain text.", what, c)
		}
	}
	return ""
}

func (p *Portal) addQuote(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	d := quotesData{Text: strings.TrimSpace(r.PostFormValue("text")), Author: strings.TrimSpace(r.PostFormValue("author"))}
	if d.Text == "" {
		d.Error = "Give the quote's text."
	} else if why := quoteProblem(d.Text, "quote", memories.MaxQuoteLength); why != "" {
		d.Error = why
	} else if why := quoteProblem(d.Author, "author name", memories.MaxAuthorLength); why != "" {
		d.Error = why
	}
	if d.Error != "" {
		p.renderQuotes(w, r, a, http.StatusBadRequest, d)
		return
	}
	n, err := p.st.AddQuote(r.Context(), actor(ps), a.Community.ID, store.Quote{Text: d.Text, Author: d.Author,
		AddedBy: actor(ps), AddedByName: ps.User.DisplayName, AddedAt: p.cfg.Clock.Now()}, from(r, ps))
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "add quote", err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/c/%s/quotes?added=%d", Base, a.Community.ID, n), http.StatusSeeOther)
}

func (p *Portal) deleteQuote(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	n, err := strconv.ParseInt(r.PathValue("number"), 10, 64)
	if err != nil || n < 1 {
		p.renderQuotes(w, r, a, http.StatusNotFound, quotesData{Error: "There is no such quote."})
		return
	}
	err = p.st.DeleteQuote(r.Context(), actor(ps), a.Community.ID, n, from(r, ps))
	if errors.Is(err, store.ErrNotFound) {
		p.renderQuotes(w, r, a, http.StatusNotFound, quotesData{Error: fmt.Sprintf("There is no quote #%d.", n)})
		return
	}
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "delete quote", err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s/c/%s/quotes?deleted=%d", Base, a.Community.ID, n), http.StatusSeeOther)
}

// Reputation.

// leaderboardSize is how many standings the page shows.
const leaderboardSize = 50

type leaderRow struct {
	Rank  int
	Name  string
	Score int
	Tier  string
}

type reputationData struct {
	Access  access
	Leaders []leaderRow
}

func (p *Portal) reputationPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	rows, err := p.st.ReputationLeaders(r.Context(), a.Community.ID, leaderboardSize)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "read reputation", err)
		return
	}
	d := reputationData{Access: a}
	for i, row := range rows {
		score := reputation.Points(row.Total)
		name := row.DisplayName
		if name == "" {
			name = row.Subject
		}
		// Everyone at one shown score shares its rank, as !rep ranks.
		rank := i + 1
		if i > 0 && d.Leaders[i-1].Score == score {
			rank = d.Leaders[i-1].Rank
		}
		d.Leaders = append(d.Leaders, leaderRow{Rank: rank, Name: name, Score: score, Tier: reputation.Tier(score)})
	}
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "reputation", "Reputation in "+a.Community.Name, d)
}
