package portal

import (
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// attachData is the attach page (Community set: attach into it) and the
// claim page (Community empty: provisional communities to claim).
type attachData struct {
	Access  access
	Options []store.AttachOption
	Claims  []claimable
	Error   string
}

// claimable is a provisional community the user could claim, with the
// channels of theirs that prove it.
type claimable struct {
	ID, Name string
	Channels []store.Channel
}

// attachReasons names the proofs on the pages.
var attachReasons = map[string]string{
	store.ReasonTwitchBroadcaster: "your Twitch channel, connected as broadcaster",
	store.ReasonDiscordInstall:    "you added the bot to this Discord server",
	store.ReasonSlackInstall:      "you installed the app in this Slack workspace",
	store.ReasonAdmin:             "you administer the community holding it",
}

func (p *Portal) attachOptions(w http.ResponseWriter, r *http.Request) ([]store.AttachOption, bool) {
	ps := sessionOf(r.Context())
	os, err := p.st.AttachOptions(r.Context(), ps.User.ID)
	if err != nil {
		p.log.Error("portal: unable to list attachable channels", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return nil, false
	}
	return os, true
}

func (p *Portal) attachPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	p.renderAttach(w, r, a, http.StatusOK, "")
}

func (p *Portal) renderAttach(w http.ResponseWriter, r *http.Request, a access, status int, problem string) {
	os, ok := p.attachOptions(w, r)
	if !ok {
		return
	}
	var here []store.AttachOption
	for _, o := range os {
		if o.Channel.CommunityID != a.Community.ID {
			here = append(here, o)
		}
	}
	p.render(w, r, sessionOf(r.Context()), status, "attach", "Attach a channel to "+a.Community.Name,
		attachData{Access: a, Options: here, Error: problem})
}

// attach moves one of the user's attachable channels into the community.
// Anything else (a channel in a community they do not administer, a
// channel they cannot prove is theirs) is refused and audited.
func (p *Portal) attach(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	platform, channelID := strings.TrimSpace(r.PostFormValue("platform")), strings.TrimSpace(r.PostFormValue("channel_id"))
	if platform == "" || channelID == "" || len(channelID) > 100 {
		p.renderAttach(w, r, a, http.StatusBadRequest, "Choose a channel to attach.")
		return
	}
	os, ok := p.attachOptions(w, r)
	if !ok {
		return
	}
	var opt *store.AttachOption
	for i := range os {
		if os[i].Channel.Platform == platform && os[i].Channel.ChannelID == channelID {
			opt = &os[i]
		}
	}
	if opt == nil {
		p.audit(r, ps, a.Community.ID, "permission.denied", r.Method+" "+r.URL.Path,
			map[string]any{"channel": platform + "/" + channelID, "reason": "not the user's to attach"})
		p.errorPage(w, r, ps, http.StatusForbidden, "Not allowed",
			"You can attach a channel you connected or installed the bot in yourself, or one of a community you administer. "+
				"This one belongs to a community you do not administer, or it is not yours.")
		return
	}
	if !opt.Movable() && !ps.User.SuperAdmin {
		p.audit(r, ps, a.Community.ID, "permission.denied", r.Method+" "+r.URL.Path,
			map[string]any{"channel": platform + "/" + channelID, "holder": opt.Channel.CommunityID, "reason": "held by a community the user does not administer"})
		p.errorPage(w, r, ps, http.StatusForbidden, "Not allowed",
			"This channel belongs to the community "+opt.CommunityName+", which you do not administer. Ask one of its admins to detach it or move it.")
		return
	}
	d := from(r, ps)
	d["reason"] = opt.Reason
	res, err := p.st.AttachChannel(r.Context(), actor(ps), a.Community.ID, opt.Channel, d)
	if errors.Is(err, store.ErrConflict) {
		p.renderAttach(w, r, a, http.StatusConflict, "That channel is already in this community, or it moved meanwhile: look again.")
		return
	}
	if err != nil {
		p.log.Error("portal: unable to attach channel", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The channel was not attached. Please try again.")
		return
	}
	// Both communities' routers cache which channels they hold.
	p.announce(a.Community.ID)
	if res.From != "" {
		p.announce(res.From)
	}
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/channels", http.StatusSeeOther)
}

func (p *Portal) detach(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	platform, channelID := strings.TrimSpace(r.PostFormValue("platform")), strings.TrimSpace(r.PostFormValue("channel_id"))
	chs, err := p.st.Channels(r.Context(), a.Community.ID)
	if err != nil {
		p.log.Error("portal: unable to list channels", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	var ch *store.Channel
	for i := range chs {
		if chs[i].Platform == platform && chs[i].ChannelID == channelID {
			ch = &chs[i]
		}
	}
	if ch == nil {
		p.errorPage(w, r, ps, http.StatusNotFound, "No such channel", "That channel is not in this community.")
		return
	}
	// A server's channel whose server stays here would come straight back
	// through its server on its next message.
	if ch.ServerID != "" && ch.ServerID != ch.ChannelID {
		for _, o := range chs {
			if o.Platform == ch.Platform && o.ChannelID == ch.ServerID {
				p.errorPage(w, r, ps, http.StatusConflict, "Detach the server instead",
					"This channel follows its server, which is in this community: it would come back on its next message. "+
						"Detach the server to detach all of its channels, or attach this channel to another community.")
				return
			}
		}
	}
	if _, err := p.st.DetachChannel(r.Context(), actor(ps), a.Community.ID, platform, channelID, from(r, ps)); err != nil {
		p.log.Error("portal: unable to detach channel", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The channel was not detached. Please try again.")
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/channels", http.StatusSeeOther)
}

// claimables groups the user's attachable channels held by provisional
// communities: each such community may be claimed whole.
func claimables(os []store.AttachOption) []claimable {
	var out []claimable
	at := map[string]int{}
	for _, o := range os {
		if !o.CommunityProvisional || o.Channel.CommunityID == "" {
			continue
		}
		i, ok := at[o.Channel.CommunityID]
		if !ok {
			i = len(out)
			at[o.Channel.CommunityID] = i
			out = append(out, claimable{ID: o.Channel.CommunityID, Name: o.CommunityName})
		}
		out[i].Channels = append(out[i].Channels, o.Channel)
	}
	return out
}

func (p *Portal) claimPage(w http.ResponseWriter, r *http.Request) {
	p.renderClaim(w, r, http.StatusOK, "")
}

func (p *Portal) renderClaim(w http.ResponseWriter, r *http.Request, status int, problem string) {
	os, ok := p.attachOptions(w, r)
	if !ok {
		return
	}
	p.render(w, r, sessionOf(r.Context()), status, "attach", "Claim a community",
		attachData{Claims: claimables(os), Error: problem})
}

func (p *Portal) claim(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		p.errorPage(w, r, ps, http.StatusNotFound, "No such community", "There is no community with that id.")
		return
	}
	os, ok := p.attachOptions(w, r)
	if !ok {
		return
	}
	var proof []string
	for _, c := range claimables(os) {
		if c.ID == id {
			for _, ch := range c.Channels {
				proof = append(proof, ch.Platform+"/"+ch.ChannelID)
			}
		}
	}
	if proof == nil {
		p.audit(r, ps, id, "permission.denied", r.Method+" "+r.URL.Path, map[string]any{"reason": "no channel of the user in this provisional community"})
		p.errorPage(w, r, ps, http.StatusForbidden, "Not allowed",
			"You can claim a provisional community only when one of its channels is yours (you connected it or installed the bot there).")
		return
	}
	d := from(r, ps)
	d["proof"] = proof
	err := p.st.ClaimCommunity(r.Context(), actor(ps), id, ps.User.ID, d)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		p.renderClaim(w, r, http.StatusConflict, "That community was claimed or removed meanwhile.")
		return
	}
	if err != nil {
		p.log.Error("portal: unable to claim community", logging.KeyCommunity, id, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The community was not claimed. Please try again.")
		return
	}
	p.announce(id)
	http.Redirect(w, r, Base+"/c/"+id, http.StatusSeeOther)
}

// Why is the page's wording of a proof.
func (attachData) Why(reason string) string { return attachReasons[reason] }
