package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// item is one row of inventory_items with what is derived from it.
type item struct {
	ID       int64
	Name     string
	Quantity int
	Out      int
	Labels   []string
}

func (it *item) available() int { return it.Quantity - it.Out }

// holding is what one holder has of an item.
type holding struct {
	Name  string
	Units int
	Since time.Time
}

// event is one line of an item's history.
type event struct {
	Action   string
	Quantity int
	Actor    string
	Holder   string
	At       time.Time
}

var errNoItem = errors.New("inventory: no such item")

// lockItem finds an item by name, case-insensitively, and locks its row
// until the transaction ends: every change to an item, its labels or its
// checkouts takes this lock first, so two checkouts of the last unit are
// decided one after the other.
func lockItem(ctx context.Context, tx pgx.Tx, community, name string) (*item, error) {
	var it item
	err := tx.QueryRow(ctx, `SELECT id, name, quantity FROM inventory_items
		WHERE community_id = $1 AND lower(name) = lower($2) FOR UPDATE`, community, name).Scan(&it.ID, &it.Name, &it.Quantity)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoItem
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to lock item: %w", err)
	}
	if err := fill(ctx, tx, &it); err != nil {
		return nil, err
	}
	return &it, nil
}

// readItem finds an item without locking it.
func readItem(ctx context.Context, tx pgx.Tx, community, name string) (*item, error) {
	var it item
	err := tx.QueryRow(ctx, `SELECT id, name, quantity FROM inventory_items
		WHERE community_id = $1 AND lower(name) = lower($2)`, community, name).Scan(&it.ID, &it.Name, &it.Quantity)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoItem
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to read item: %w", err)
	}
	if err := fill(ctx, tx, &it); err != nil {
		return nil, err
	}
	return &it, nil
}

// fill reads an item's labels and how many of its units are out.
func fill(ctx context.Context, tx pgx.Tx, it *item) error {
	err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM inventory_checkouts WHERE item_id = $1),
			coalesce((SELECT array_agg(label ORDER BY label) FROM inventory_labels WHERE item_id = $1), '{}')`,
		it.ID).Scan(&it.Out, &it.Labels)
	if err != nil {
		return fmt.Errorf("inventory: unable to read item %d: %w", it.ID, err)
	}
	return nil
}

// createItem inserts a new item; created is false when a concurrent add
// of the same name won the race (the caller then locks that one).
func createItem(ctx context.Context, tx pgx.Tx, community, name string, qty int, by string) (id int64, created bool, err error) {
	err = tx.QueryRow(ctx, `INSERT INTO inventory_items (community_id, name, quantity, created_by)
		VALUES ($1, $2, $3, $4) ON CONFLICT (community_id, lower(name)) DO NOTHING RETURNING id`,
		community, name, qty, by).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("inventory: unable to add item: %w", err)
	}
	return id, true, nil
}

func addQuantity(ctx context.Context, tx pgx.Tx, id int64, qty int) error {
	if _, err := tx.Exec(ctx, `UPDATE inventory_items SET quantity = quantity + $2, updated_at = now() WHERE id = $1`, id, qty); err != nil {
		return fmt.Errorf("inventory: unable to add to item %d: %w", id, err)
	}
	return nil
}

func addLabels(ctx context.Context, tx pgx.Tx, community string, id int64, labels []string) error {
	if len(labels) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO inventory_labels (community_id, item_id, label)
		SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`, community, id, labels); err != nil {
		return fmt.Errorf("inventory: unable to label item %d: %w", id, err)
	}
	return nil
}

func removeLabels(ctx context.Context, tx pgx.Tx, id int64, labels []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM inventory_labels WHERE item_id = $1 AND label = ANY($2)`, id, labels); err != nil {
		return fmt.Errorf("inventory: unable to unlabel item %d: %w", id, err)
	}
	return nil
}

func deleteItem(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM inventory_items WHERE id = $1`, id); err != nil {
		return fmt.Errorf("inventory: unable to remove item %d: %w", id, err)
	}
	return nil
}

func checkout(ctx context.Context, tx pgx.Tx, community string, id int64, holderKey, holderName, by string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO inventory_checkouts (community_id, item_id, holder, holder_name, checked_out_by)
		VALUES ($1, $2, $3, $4, $5)`, community, id, holderKey, holderName, by); err != nil {
		return fmt.Errorf("inventory: unable to check out item %d: %w", id, err)
	}
	return nil
}

// checkin returns the unit the holder has had longest; found is false when
// they hold none.
func checkin(ctx context.Context, tx pgx.Tx, id int64, holderKey string) (name string, found bool, err error) {
	err = tx.QueryRow(ctx, `DELETE FROM inventory_checkouts WHERE id = (
			SELECT id FROM inventory_checkouts WHERE item_id = $1 AND holder = $2
			ORDER BY checked_out_at, id LIMIT 1)
		RETURNING holder_name`, id, holderKey).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("inventory: unable to check in item %d: %w", id, err)
	}
	return name, true, nil
}

// holders lists who holds units of an item, longest-held first.
func holders(ctx context.Context, tx pgx.Tx, id int64) ([]holding, error) {
	rows, err := tx.Query(ctx, `SELECT (array_agg(holder_name ORDER BY checked_out_at DESC, id DESC))[1], count(*), min(checked_out_at)
		FROM inventory_checkouts WHERE item_id = $1 GROUP BY holder ORDER BY min(checked_out_at), holder`, id)
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to read holders: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (holding, error) {
		var h holding
		err := r.Scan(&h.Name, &h.Units, &h.Since)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to read holders: %w", err)
	}
	return out, nil
}

// record adds a line to the history.
func record(ctx context.Context, tx pgx.Tx, community string, it *item, action string, qty int, actor, holder, invocation string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO inventory_history (community_id, item_id, item_name, action, quantity, actor, holder, invocation_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, community, it.ID, it.Name, action, qty, actor, holder, invocation); err != nil {
		return fmt.Errorf("inventory: unable to record %s of item %d: %w", action, it.ID, err)
	}
	return nil
}

// recent returns an item's last n history lines, newest first.
func recent(ctx context.Context, tx pgx.Tx, id int64, n int) ([]event, error) {
	rows, err := tx.Query(ctx, `SELECT action, quantity, actor, holder, at FROM inventory_history
		WHERE item_id = $1 ORDER BY id DESC LIMIT $2`, id, n)
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to read history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event, error) {
		var e event
		err := r.Scan(&e.Action, &e.Quantity, &e.Actor, &e.Holder, &e.At)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to read history: %w", err)
	}
	return out, nil
}

// Filters of a list.
const (
	filterAll       = ""
	filterAvailable = "available"
	filterOut       = "out"
)

// items lists a community's items by name, optionally only those with a
// unit available or out, or those whose name or a label contains term.
func items(ctx context.Context, tx pgx.Tx, community, filter, term string) ([]item, error) {
	var pattern any
	if term != "" {
		pattern = likePattern(term)
	}
	rows, err := tx.Query(ctx, `SELECT i.id, i.name, i.quantity,
			(SELECT count(*) FROM inventory_checkouts c WHERE c.item_id = i.id) AS out,
			coalesce((SELECT array_agg(l.label ORDER BY l.label) FROM inventory_labels l WHERE l.item_id = i.id), '{}')
		FROM inventory_items i
		WHERE i.community_id = $1
		  AND ($2::text IS NULL OR i.name ILIKE $2 ESCAPE '\'
		       OR EXISTS (SELECT 1 FROM inventory_labels l WHERE l.item_id = i.id AND l.label ILIKE $2 ESCAPE '\'))
		ORDER BY lower(i.name), i.id`, community, pattern)
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to list items: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (item, error) {
		var it item
		err := r.Scan(&it.ID, &it.Name, &it.Quantity, &it.Out, &it.Labels)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("inventory: unable to list items: %w", err)
	}
	out := all[:0]
	for _, it := range all {
		switch {
		case filter == filterAvailable && it.available() == 0,
			filter == filterOut && it.Out == 0:
			continue
		}
		out = append(out, it)
	}
	return out, nil
}
