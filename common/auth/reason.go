package auth

import "errors"

// Reason says in a few words why a login failed, for the "auth_failed"
// log line that admins and fail2ban read; never the credentials.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrFailed):
		return "bad credentials"
	case errors.Is(err, ErrMalformed):
		return "malformed SASL response"
	}
	return err.Error()
}
