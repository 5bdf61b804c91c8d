// Package version names this build.
package version

// Version is WaddleBot's release; builds may override it with
// -ldflags "-X github.com/waddlebot/waddlebot/internal/version.Version=…".
var Version = "0.1.0"
