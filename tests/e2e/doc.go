// Package e2e holds end-to-end tests that build the real waddlebot binary
// once and run it as separate processes: `waddlebot dev` with `say`, the dev
// chat page in headless Chromium, every part as its own process with
// replicas, the dead-letter CLI and `waddlebot config`.
//
// Every process gets a clean environment (no WADDLEBOT_* variable unless the
// test sets it), its own working directory and a throw-away database.
// PostgreSQL comes from WADDLEBOT_TEST_DATABASE_URL (default: the local
// server, user postgres); the browser test uses Chromium from $CHROME_PATH or
// the usual places and is skipped without one, unless CI is set.
package e2e
