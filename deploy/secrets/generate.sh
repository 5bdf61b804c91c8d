#!/bin/sh
# Writes the files compose.yaml mounts as secrets, next to this script:
# random keys and passwords, and empty platform secrets to fill in. An
# existing file is kept, so re-running never changes a key in use.
set -eu
cd "$(dirname "$0")"
# Compose bind-mounts each file as it is: the parts run as user 65532, not
# the owner, so the files are world-readable and the directory is not.
chmod 700 .
umask 022
put() { [ -e "$1" ] || printf '%s' "$2" > "$1"; }
put postgres_password "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
put database_url "postgres://waddlebot:$(cat postgres_password)@postgres:5432/waddlebot?sslmode=disable"
put secret_key "$(head -c 32 /dev/urandom | base64)"
put admin_token "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
put twitch_webhook_secret "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
for f in ai_api_key twitch_client_secret discord_bot_token discord_client_secret \
         slack_app_token slack_bot_token slack_client_secret slack_signing_secret \
         youtube_api_key spotify_client_secret; do
  put "$f" ""
done
echo "secrets in $(pwd); fill in the platform ones you use"
