package collectors

import (
	"crypto/subtle"
	"net/http"
)

// stateCookiePath covers every platform's connect routes; each platform
// names its own cookie, so installs on two platforms at once do not clash.
const stateCookiePath = "/connect/"

// StateCookieMaxAge is how long, in seconds, a state cookie lives: the
// ten minutes a connect link's state is good for.
const StateCookieMaxAge = 600

// SetStateCookie ties an OAuth state to the browser that started the
// connect link: the callback passes CheckStateCookie only from that
// browser, so a callback URL made by someone else (their state, their
// code) does not connect their account from ours. The cookie is HttpOnly
// and SameSite=Lax (the platform's redirect back to the callback is a
// top-level GET navigation, which Lax cookies are sent with); secure marks
// it Secure, for a public URL that is https.
func SetStateCookie(w http.ResponseWriter, name, state string, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: state, Path: stateCookiePath, MaxAge: StateCookieMaxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure,
	})
}

// ClearStateCookie removes the cookie SetStateCookie set: its state is
// spent once the callback was reached.
func ClearStateCookie(w http.ResponseWriter, name string, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Path: stateCookiePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure,
	})
}

// CheckStateCookie reports whether r comes from the browser that was given
// state (a non-empty one) by SetStateCookie under name.
func CheckStateCookie(r *http.Request, name, state string) bool {
	c, err := r.Cookie(name)
	return err == nil && state != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) == 1
}

// GetOnly serves h for GET and HEAD and answers 405 otherwise: the connect
// links are pages a browser opens, never forms.
func GetOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	})
}
