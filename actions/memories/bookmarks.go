package memories

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/schemas"
)

var bookmarkNameRe = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// reservedNames are !url's own subcommands: a bookmark named "add" could
// never be shown.
var reservedNames = map[string]bool{"add": true, "remove": true, "delete": true, "del": true, "list": true}

func urlUsage(inv *schemas.Invocation) string {
	p := actions.CommandPrefix(inv)
	return fmt.Sprintf("Usage: %[1]surl <name> · %[1]surl add <name> <url> · %[1]surl remove <name> · %[1]surls [page]", p)
}

func (m *module) url(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	sub, rest := actions.CutWord(inv.ArgText)
	switch strings.ToLower(sub) {
	case "":
		return urlUsage(inv), nil
	case "add":
		return m.addBookmark(ctx, inv, tx, rest)
	case "remove", "delete", "del":
		return m.removeBookmark(ctx, inv, tx, rest)
	case "list":
		return m.listBookmarks(ctx, inv, tx, rest)
	}
	if rest != "" {
		return urlUsage(inv), nil
	}
	return m.showBookmark(ctx, inv, tx, sub)
}

func (m *module) urls(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	return m.listBookmarks(ctx, inv, tx, inv.ArgText)
}

// bookmarkName reads a name as users type it; names are case-insensitive.
func bookmarkName(s string) (string, bool) {
	name := strings.ToLower(s)
	return name, bookmarkNameRe.MatchString(name)
}

// checkURL returns why raw cannot be a bookmark ("" when it can). The URL
// is kept as typed: it only has to be a web address a chat user can open.
func checkURL(raw string) string {
	if n := utf8.RuneCountInString(raw); n > MaxURLLength {
		return fmt.Sprintf("That URL is %d characters long; the most is %d.", n, MaxURLLength)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return "A URL may not contain spaces or control characters."
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "That is not a valid URL; give a whole address such as https://example.com/page."
	}
	if u.Scheme == "" {
		return "Give the whole address, starting with https:// (or http://)."
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return "Only http:// and https:// URLs can be bookmarked."
	}
	if u.Hostname() == "" {
		return "That URL has no host; give a whole address such as https://example.com/page."
	}
	return ""
}

func (m *module) addBookmark(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	if !isWriter(inv) {
		return fmt.Sprintf("Sorry %s, only moderators or people with the %q label can add bookmarks.", inv.Event.User.Name(), WriterLabel), nil
	}
	p := actions.CommandPrefix(inv)
	rawName, raw := actions.CutWord(rest)
	if rawName == "" || raw == "" {
		return fmt.Sprintf("Usage: %surl add <name> <url>", p), nil
	}
	name, ok := bookmarkName(rawName)
	if !ok {
		return "A bookmark name is 1 to 32 letters, digits, '_' or '-'.", nil
	}
	if reservedNames[name] {
		return fmt.Sprintf("%q is one of %surl's own words; pick another name.", name, p), nil
	}
	if why := checkURL(raw); why != "" {
		return why, nil
	}
	tag, err := tx.Exec(ctx, `INSERT INTO memories_bookmarks (community_id, name, url, added_by, added_by_name, added_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (community_id, name) DO NOTHING`,
		inv.Community.ID, name, raw, actions.UserKey(inv), inv.Event.User.Name(), m.clock.Now().UTC())
	if err != nil {
		return "", fmt.Errorf("memories: unable to add bookmark: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Sprintf("There is already a bookmark named %s. Remove it first with %surl remove %s.", name, p, name), nil
	}
	return fmt.Sprintf("Bookmark %s added; %surl %s shows it.", name, p, name), nil
}

func (m *module) showBookmark(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rawName string) (string, error) {
	name, ok := bookmarkName(rawName)
	if !ok {
		return urlUsage(inv), nil
	}
	var u string
	err := tx.QueryRow(ctx, `SELECT url FROM memories_bookmarks WHERE community_id = $1 AND name = $2`, inv.Community.ID, name).Scan(&u)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("There is no bookmark named %s; %surls lists them.", name, actions.CommandPrefix(inv)), nil
	}
	if err != nil {
		return "", fmt.Errorf("memories: unable to read bookmark: %w", err)
	}
	return name + ": " + u, nil
}

func (m *module) listBookmarks(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, arg string) (string, error) {
	p := actions.CommandPrefix(inv)
	page := 1
	if arg != "" {
		n, ok := parsePage(arg)
		if !ok {
			return fmt.Sprintf("Usage: %surls [page]", p), nil
		}
		page = n
	}
	rows, err := tx.Query(ctx, `SELECT name, url FROM memories_bookmarks WHERE community_id = $1 ORDER BY name`, inv.Community.ID)
	if err != nil {
		return "", fmt.Errorf("memories: unable to list bookmarks: %w", err)
	}
	var items []string
	for rows.Next() {
		var name, u string
		if err := rows.Scan(&name, &u); err != nil {
			rows.Close()
			return "", fmt.Errorf("memories: unable to list bookmarks: %w", err)
		}
		items = append(items, name+": "+actions.Clip(u, 80))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("memories: unable to list bookmarks: %w", err)
	}
	text, _ := actions.Listing{
		Header: "Bookmarks:",
		Items:  items,
		Empty:  fmt.Sprintf("There are no bookmarks yet. Moderators add them with %surl add <name> <url>.", p),
		More:   func(n int) string { return p + "urls " + strconv.Itoa(n) },
	}.Page(page, pageLimit(inv))
	return text, nil
}

func (m *module) removeBookmark(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	if !isWriter(inv) {
		return fmt.Sprintf("Sorry %s, only moderators or people with the %q label can remove bookmarks.", inv.Event.User.Name(), WriterLabel), nil
	}
	rawName, extra := actions.CutWord(rest)
	name, ok := bookmarkName(rawName)
	if !ok || extra != "" {
		return fmt.Sprintf("Usage: %surl remove <name>", actions.CommandPrefix(inv)), nil
	}
	tag, err := tx.Exec(ctx, `DELETE FROM memories_bookmarks WHERE community_id = $1 AND name = $2`, inv.Community.ID, name)
	if err != nil {
		return "", fmt.Errorf("memories: unable to remove bookmark: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Sprintf("There is no bookmark named %s.", name), nil
	}
	return fmt.Sprintf("Bookmark %s removed.", name), nil
}
