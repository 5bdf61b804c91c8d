package memories

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/schemas"
)

// authorSep ends a quote's text and starts its author: "text - author".
const authorSep = " - "

func quoteUsage(inv *schemas.Invocation) string {
	p := actions.CommandPrefix(inv)
	return fmt.Sprintf("Usage: %[1]squote [number] · %[1]squote add <text> [- author] · %[1]squote search <term> [page] · %[1]squote remove <number>", p)
}

func (m *module) quote(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	sub, rest := actions.CutWord(inv.ArgText)
	switch strings.ToLower(sub) {
	case "", "random":
		if rest != "" {
			return quoteUsage(inv), nil
		}
		return m.randomQuote(ctx, inv, tx)
	case "add":
		return m.addQuote(ctx, inv, tx, rest)
	case "search", "find":
		return m.searchQuotes(ctx, inv, tx, rest)
	case "remove", "delete", "del":
		return m.removeQuote(ctx, inv, tx, rest)
	}
	n, ok := parseNumber(sub)
	if !ok || rest != "" {
		return quoteUsage(inv), nil
	}
	return m.showQuote(ctx, inv, tx, n)
}

func (m *module) addQuote(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	if !isWriter(inv) {
		return fmt.Sprintf("Sorry %s, only moderators or people with the %q label can add quotes.", inv.Event.User.Name(), WriterLabel), nil
	}
	text, author := rest, ""
	// Padded, so "- author" alone is an author without a quote.
	if padded := " " + rest; strings.Contains(padded, authorSep) {
		i := strings.LastIndex(padded, authorSep)
		text, author = strings.TrimSpace(padded[:i]), strings.TrimSpace(padded[i+len(authorSep):])
	}
	if text == "" {
		return fmt.Sprintf("Usage: %squote add <text> [- author]", actions.CommandPrefix(inv)), nil
	}
	if why := checkText(text, "quote", MaxQuoteLength); why != "" {
		return why, nil
	}
	if why := checkText(author, "author name", MaxAuthorLength); why != "" {
		return why, nil
	}
	n, err := nextNumber(ctx, tx, inv.Community.ID, "quote")
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO memories_quotes (community_id, number, text, author, added_by, added_by_name, added_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		inv.Community.ID, n, text, author, actions.UserKey(inv), inv.Event.User.Name(), m.clock.Now().UTC()); err != nil {
		return "", fmt.Errorf("memories: unable to add quote: %w", err)
	}
	return fmt.Sprintf("Quote #%d added.", n), nil
}

type quoteRow struct {
	number  int64
	text    string
	author  string
	addedBy string
	addedAt time.Time
}

const quoteColumns = `number, text, author, added_by_name, added_at`

func scanQuote(r pgx.Row) (quoteRow, error) {
	var q quoteRow
	err := r.Scan(&q.number, &q.text, &q.author, &q.addedBy, &q.addedAt)
	return q, err
}

// render shows a quote whole. Who added it and when is dropped before the
// quote itself would have to be split over two messages.
func (q quoteRow) render(inv *schemas.Invocation) string {
	s := fmt.Sprintf("#%d: “%s”", q.number, q.text)
	if q.author != "" {
		s += " — " + q.author
	}
	full := s + fmt.Sprintf(" (added by %s, %s)", q.addedBy, q.addedAt.In(location(inv.Community.TimeZone)).Format("2006-01-02"))
	if utf8.RuneCountInString(full) <= pageLimit(inv) {
		return full
	}
	return s
}

func (m *module) randomQuote(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	q, err := scanQuote(tx.QueryRow(ctx, `SELECT `+quoteColumns+` FROM memories_quotes WHERE community_id = $1
		ORDER BY random() LIMIT 1`, inv.Community.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("There are no quotes yet. Moderators add them with %squote add <text> [- author].", actions.CommandPrefix(inv)), nil
	}
	if err != nil {
		return "", fmt.Errorf("memories: unable to pick a quote: %w", err)
	}
	return q.render(inv), nil
}

func (m *module) showQuote(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, n int64) (string, error) {
	q, err := scanQuote(tx.QueryRow(ctx, `SELECT `+quoteColumns+` FROM memories_quotes WHERE community_id = $1 AND number = $2`,
		inv.Community.ID, n))
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("There is no quote #%d.", n), nil
	}
	if err != nil {
		return "", fmt.Errorf("memories: unable to read quote: %w", err)
	}
	return q.render(inv), nil
}

// maxSearchResults bounds what one search pages through; a term matching
// more is too vague to page through in chat anyway.
const maxSearchResults = 500

// likePattern matches term anywhere, with LIKE's own wildcards taken literally.
func likePattern(term string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(term) + "%"
}

func (m *module) searchQuotes(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	term, page := splitPage(rest)
	if term == "" {
		return fmt.Sprintf("Usage: %squote search <term> [page]", p), nil
	}
	if n := utf8.RuneCountInString(term); n < MinSearchTerm {
		return fmt.Sprintf("Search for at least %d characters: %squote search <term> [page]", MinSearchTerm, p), nil
	}
	if why := checkText(term, "search term", MaxSearchTerm); why != "" {
		return why, nil
	}
	// Full-text search finds words in any order; the substring match finds
	// what it cannot: parts of words, names shorter than a word, punctuation.
	// A query of exclusions alone (querytree 'T': "-word") would match nearly
	// every quote, so "-" excludes only next to a word to look for.
	rows, err := tx.Query(ctx, `WITH q AS (SELECT websearch_to_tsquery('simple', $2) AS q)
		SELECT number, text FROM memories_quotes, q
		WHERE community_id = $1
		  AND ((querytree(q.q) NOT IN ('', 'T') AND search @@ q.q)
		       OR text ILIKE $3 ESCAPE '\' OR author ILIKE $3 ESCAPE '\')
		ORDER BY number LIMIT $4`, inv.Community.ID, term, likePattern(term), maxSearchResults)
	if err != nil {
		return "", fmt.Errorf("memories: unable to search quotes: %w", err)
	}
	var items []string
	for rows.Next() {
		var n int64
		var text string
		if err := rows.Scan(&n, &text); err != nil {
			rows.Close()
			return "", fmt.Errorf("memories: unable to search quotes: %w", err)
		}
		items = append(items, fmt.Sprintf("#%d “%s”", n, actions.Clip(text, 80)))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("memories: unable to search quotes: %w", err)
	}
	text, _ := actions.Listing{
		Header: fmt.Sprintf("Quotes matching “%s”:", term),
		Items:  items,
		Empty:  fmt.Sprintf("No quote matches “%s”.", term),
		More:   func(n int) string { return p + "quote search " + term + " " + strconv.Itoa(n) },
	}.Page(page, pageLimit(inv))
	return text, nil
}

func (m *module) removeQuote(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	if !actions.IsModerator(inv) {
		return fmt.Sprintf("Sorry %s, only moderators can remove quotes.", inv.Event.User.Name()), nil
	}
	n, ok := parseNumber(rest)
	if !ok {
		return fmt.Sprintf("Usage: %squote remove <number>", actions.CommandPrefix(inv)), nil
	}
	tag, err := tx.Exec(ctx, `DELETE FROM memories_quotes WHERE community_id = $1 AND number = $2`, inv.Community.ID, n)
	if err != nil {
		return "", fmt.Errorf("memories: unable to remove quote: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Sprintf("There is no quote #%d.", n), nil
	}
	return fmt.Sprintf("Quote #%d removed.", n), nil
}
