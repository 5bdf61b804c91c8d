package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry records who changed what.
type AuditEntry struct {
	ID          int64
	CommunityID string
	Actor       string
	Action      string
	Target      string
	Details     map[string]any
	At          time.Time
}

// Audit appends an entry, inside the caller's transaction when q is one, so
// a change and its record commit together.
func (s *Store) Audit(ctx context.Context, q Querier, e AuditEntry) error {
	if q == nil {
		q = s.pool
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	var community any
	if e.CommunityID != "" {
		community = e.CommunityID
	}
	if _, err := q.Exec(ctx, `INSERT INTO audit_log (community_id, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)`,
		community, e.Actor, e.Action, e.Target, e.Details); err != nil {
		return fmt.Errorf("store: unable to write audit entry: %w", err)
	}
	return nil
}

// AuditLog lists a community's most recent entries, newest first.
func (s *Store) AuditLog(ctx context.Context, communityID string, limit int) ([]AuditEntry, error) {
	rows, err := s.read.Query(ctx, `
		SELECT id, coalesce(community_id::text, ''), actor, action, target, details, at
		FROM audit_log WHERE community_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, communityID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.CommunityID, &e.Actor, &e.Action, &e.Target, &e.Details, &e.At); err != nil {
			return nil, fmt.Errorf("store: unable to read audit entry: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
