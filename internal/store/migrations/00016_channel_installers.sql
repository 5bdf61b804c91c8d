-- +goose Up
-- Who installed the bot: the platform user id of the account that went
-- through the install consent ('' when not known, as for installs made
-- before this column). The portal lets that person attach the server's
-- channels to a community of theirs; nobody else can prove they own it.
ALTER TABLE discord_guilds ADD COLUMN installed_by text NOT NULL DEFAULT '';
ALTER TABLE slack_workspaces ADD COLUMN installed_by text NOT NULL DEFAULT '';
CREATE INDEX discord_guilds_installed_by ON discord_guilds (installed_by) WHERE installed_by <> '';
CREATE INDEX slack_workspaces_installed_by ON slack_workspaces (installed_by) WHERE installed_by <> '';
-- The site audit's actor filter and the users page's last sign-in look
-- entries up by actor.
CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);

-- +goose Down
DROP INDEX audit_log_actor;
ALTER TABLE slack_workspaces DROP COLUMN installed_by;
ALTER TABLE discord_guilds DROP COLUMN installed_by;
