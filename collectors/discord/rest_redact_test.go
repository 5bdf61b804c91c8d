package discord

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestRedactURLHidesInteractionTokens(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"follow-up", "https://discord.com/api/v9/webhooks/1/secret-token?wait=true", "https://discord.com/api/v9/webhooks/1/{token}"},
		{"original", "https://discord.com/api/v9/webhooks/1/secret-token/messages/@original", "https://discord.com/api/v9/webhooks/1/{token}/messages/@original"},
		{"callback", "https://discord.com/api/v9/interactions/2/secret-token/callback", "https://discord.com/api/v9/interactions/2/{token}/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := redactURL(&url.Error{Op: "Post", URL: tt.url, Err: context.DeadlineExceeded})
			if strings.Contains(err.Error(), "secret-token") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want %s and no token", err, tt.want)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the cause is lost: %v", err)
			}
		})
	}
}

type rlCounting struct{ n int }

func (c *rlCounting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n++
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

func TestGlobalLimiterHoldsRequestsBack(t *testing.T) {
	// One request an hour: the second bot request cannot go before its
	// context's deadline, so it never reaches the network; interaction
	// callbacks are not counted by Discord and pass.
	next := &rlCounting{}
	client := &http.Client{Transport: &limited{limiter: rate.NewLimiter(rate.Every(time.Hour), 1), next: next}}
	get := func(path string) error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://discord.com/api/v9"+path, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get("/channels/1/messages"); err != nil {
		t.Fatal(err)
	}
	if err := get("/channels/1/messages"); err == nil {
		t.Error("the second request went through")
	}
	if err := get("/interactions/1/tok/callback"); err != nil {
		t.Errorf("interaction callback held back: %v", err)
	}
	if next.n != 2 {
		t.Errorf("%d requests reached the network, want 2", next.n)
	}
}
