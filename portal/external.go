package portal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// maxManifestBytes bounds a pasted or uploaded manifest.
const maxManifestBytes = external.MaxManifestBytes

// builtinNames are refused as external modules even before the built-in
// modules first upsert their manifests into a fresh catalogue.
var builtinNames = sync.OnceValue(builtin.Names)

// externalRow is one registered external module as the page lists it.
type externalRow struct {
	store.ExternalModule
	Alive string
}

type externalData struct {
	Modules []externalRow
	Error   string
	// Form echoes a refused registration so nothing typed is lost.
	Form struct{ Manifest, Kind, URL string }
	// Added names the module just registered; Secret is its webhook secret,
	// shown on this one response and never again.
	Added      string
	Secret     string
	SigHeader  string
	TimeHeader string
	CanMint    bool
}

func (p *Portal) externalPage(w http.ResponseWriter, r *http.Request) {
	p.renderExternal(w, r, http.StatusOK, &externalData{})
}

func (p *Portal) renderExternal(w http.ResponseWriter, r *http.Request, status int, d *externalData) {
	ps := sessionOf(r.Context())
	mods, err := p.st.ExternalModules(r.Context())
	if err != nil {
		p.log.Error("portal: unable to list external modules", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	counts, known := p.liveness(r.Context())
	d.Modules = make([]externalRow, 0, len(mods))
	for _, m := range mods {
		d.Modules = append(d.Modules, externalRow{ExternalModule: m, Alive: aliveText(counts, known, m.Manifest.Name)})
	}
	d.SigHeader, d.TimeHeader = external.HeaderSignature, external.HeaderTimestamp
	d.CanMint = p.cfg.NATSAuthDir != ""
	if d.Form.Kind == "" {
		d.Form.Kind = store.ExternalNATS
	}
	p.render(w, r, ps, status, "external", "External modules", d)
}

// maxExternalForm caps the registration form: a manifest and two fields.
const maxExternalForm = maxManifestBytes + 64<<10

// limitForm caps a form's body and parses it before the CSRF check does,
// so an oversized upload is told so rather than refused as forged.
func (p *Portal) limitForm(n int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		var err error
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
			err = r.ParseMultipartForm(n)
		} else {
			err = r.ParseForm()
		}
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			p.errorPage(w, r, nil, http.StatusRequestEntityTooLarge, "Too large",
				fmt.Sprintf("The form is over %d KiB; a manifest may be at most %d KiB.", n>>10, maxManifestBytes>>10))
			return
		}
		h(w, r)
	}
}

// manifestInput is the uploaded file when one was chosen, else the pasted text.
func manifestInput(r *http.Request) ([]byte, error) {
	if f, _, err := r.FormFile("manifest_file"); err == nil {
		defer f.Close()
		doc, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
		if err != nil {
			return nil, fmt.Errorf("the manifest file could not be read: %v", err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			if len(doc) > maxManifestBytes {
				return nil, fmt.Errorf("the manifest is over %d KiB", maxManifestBytes>>10)
			}
			return doc, nil
		}
	}
	doc := r.PostFormValue("manifest")
	if len(doc) > maxManifestBytes {
		return nil, fmt.Errorf("the manifest is over %d KiB", maxManifestBytes>>10)
	}
	return []byte(doc), nil
}

func (p *Portal) addExternal(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	d := &externalData{}
	d.Form.Kind, d.Form.URL = r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("url"))
	d.Form.Manifest = truncate(r.PostFormValue("manifest"), maxManifestBytes)
	refuse := func(status int, problem string) {
		d.Error = problem
		p.renderExternal(w, r, status, d)
	}
	doc, err := manifestInput(r)
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	if d.Form.Manifest == "" {
		d.Form.Manifest = string(doc)
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		refuse(http.StatusBadRequest, "The manifest was refused: paste the module's manifest (JSON) or choose its file")
		return
	}
	m, err := external.ParseManifest(doc, builtinNames())
	if err != nil {
		refuse(http.StatusBadRequest, "The manifest was refused: "+err.Error())
		return
	}
	var secret []byte
	switch d.Form.Kind {
	case store.ExternalNATS:
		if d.Form.URL != "" {
			refuse(http.StatusBadRequest, "A NATS module has no URL: leave it empty, or choose webhook.")
			return
		}
	case store.ExternalWebhook:
		if err := external.CheckWebhookURL(d.Form.URL, p.cfg.DevSignIn); err != nil {
			refuse(http.StatusBadRequest, "The URL was refused: "+err.Error()+".")
			return
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
		secret = []byte(hex.EncodeToString(b))
	default:
		refuse(http.StatusBadRequest, "Choose how the module is reached: nats or webhook.")
		return
	}
	err = p.st.AddExternalModule(r.Context(), actor(ps), m, d.Form.Kind, d.Form.URL, secret, from(r, ps))
	switch {
	case errors.Is(err, store.ErrConflict):
		refuse(http.StatusConflict, fmt.Sprintf("%s is a built-in module; choose another name.", m.Name))
		return
	case errors.Is(err, schemas.ErrInvalid):
		refuse(http.StatusBadRequest, "The manifest was refused: "+err.Error())
		return
	case err != nil:
		p.log.Error("portal: unable to register an external module", logging.KeyModule, m.Name, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The module was not registered. Please try again.")
		return
	}
	p.announceRegistry(m.Name)
	p.renderExternal(w, r, http.StatusOK, &externalData{Added: m.Name, Secret: string(secret)})
}

func (p *Portal) removeExternal(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	name := r.PathValue("module")
	if r.PostFormValue("confirm") != name {
		p.renderExternal(w, r, http.StatusBadRequest, &externalData{
			Error: fmt.Sprintf("Type the module's name, %s, to confirm removing it.", name)})
		return
	}
	err := p.st.RemoveExternalModule(r.Context(), actor(ps), name, from(r, ps))
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.renderExternal(w, r, http.StatusNotFound, &externalData{Error: "There is no such external module."})
		return
	case err != nil:
		p.log.Error("portal: unable to remove an external module", logging.KeyModule, name, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The module was not removed. Please try again.")
		return
	}
	p.announceRegistry(name)
	http.Redirect(w, r, Base+"/admin/external", http.StatusSeeOther)
}

// mintExternal answers with a new .creds file for a NATS module. Minting
// is a POST: it makes a credential, so it needs the CSRF token.
func (p *Portal) mintExternal(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	name := r.PathValue("module")
	m, err := p.st.ExternalModule(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.renderExternal(w, r, http.StatusNotFound, &externalData{Error: "There is no such external module."})
		return
	case err != nil:
		p.log.Error("portal: unable to read an external module", logging.KeyModule, name, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	case m.Kind != store.ExternalNATS:
		p.renderExternal(w, r, http.StatusBadRequest, &externalData{
			Error: fmt.Sprintf("%s is a %s module; only NATS modules get credentials.", name, m.Kind)})
		return
	case p.cfg.NATSAuthDir == "":
		p.renderExternal(w, r, http.StatusConflict, &externalData{Error: "This portal has no nats-config directory " +
			"(WADDLEBOT_NATS_AUTH_DIR), so it cannot mint credentials. Run `waddlebot external mint " + name +
			"` where the keys of `waddlebot nats-config` are."})
		return
	}
	setup, err := natsauth.Load(p.cfg.NATSAuthDir)
	if err != nil {
		p.log.Error("portal: unable to load the NATS keys", logging.Err(err))
		p.renderExternal(w, r, http.StatusConflict, &externalData{Error: "The portal cannot read the NATS keys in its " +
			"nats-config directory (run `waddlebot nats-config` there first): " + err.Error()})
		return
	}
	creds, err := setup.MintExternalModule(name)
	if err != nil {
		p.log.Error("portal: unable to mint credentials", logging.KeyModule, name, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "No credentials were made. Please try again.")
		return
	}
	p.audit(r, ps, "", "external.mint", name, map[string]any{
		"subscribe": natsauth.ExternalInvokeSubject(name), "publish": schemas.ResultSubject(name)})
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ".creds"}))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(creds)
}

// announceRegistry tells routers and relays the catalogue changed; without
// NATS they catch up on their next refresh.
func (p *Portal) announceRegistry(module string) {
	if p.cfg.Conn == nil {
		return
	}
	if err := p.cfg.Conn.NC.Publish(schemas.ControlRegistry, []byte(module)); err != nil {
		p.log.Warn("portal: unable to announce a catalogue change", logging.KeyModule, module, logging.Err(err))
		return
	}
	if err := p.cfg.Conn.NC.Flush(); err != nil {
		p.log.Warn("portal: unable to flush a catalogue notice", logging.KeyModule, module, logging.Err(err))
	}
}
