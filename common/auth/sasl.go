package auth

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
)

// ErrMalformed is returned by the SASL servers for a client response that
// breaks the mechanism's syntax or size limit.
var ErrMalformed = errors.New("auth: malformed SASL response")

// Challenges of the LOGIN mechanism. draft-murchison-sasl-login-00 2 names
// the prompts "User Name" and "Password"; every deployed server sends these
// spellings, and some clients (go-sasl's among them) match them exactly.
var (
	loginUserChallenge     = []byte("Username:")
	loginPasswordChallenge = []byte("Password:")
)

// checkResponse applies the size limit to one client response.
func (db *DB) checkResponse(resp []byte) error {
	if len(resp) > db.maxResponse {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(resp), db.maxResponse)
	}
	return nil
}

// NewPlainServer returns a SASL PLAIN (RFC 4616) server checked against db;
// authzid must be empty or equal to the authcid's address, else the
// exchange fails with ErrFailed. onSuccess receives the canonical address;
// its error, if any, fails the exchange.
func (db *DB) NewPlainServer(onSuccess func(address string) error) sasl.Server {
	return &plainServer{db: db, onSuccess: onSuccess}
}

type plainServer struct {
	db        *DB
	onSuccess func(string) error
	asked     bool // sent the empty challenge for a missing initial response
	done      bool
}

func (s *plainServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	if s.done {
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
	// RFC 4422 5: without an initial response the server sends an empty
	// challenge, and the client's answer is the PLAIN message.
	if resp == nil && !s.asked {
		s.asked = true
		return []byte{}, false, nil
	}
	s.done = true
	authzid, authcid, passwd, err := s.db.parsePlain(resp)
	if err != nil {
		return nil, true, err
	}
	address, err := s.db.Authenticate(authcid, passwd)
	if err != nil {
		return nil, true, err
	}
	// RFC 4616 2: an empty authzid means the identity derived from the
	// authcid; any other must be one the authcid may act as, which here is
	// only its own address.
	if authzid != "" {
		if z, err := canonicalUser(authzid, s.db.defaultDomain); err != nil || z != address {
			s.db.log.Debug("login failed", "user", address, "reason", "authorization identity differs", "authzid", authzid)
			return nil, true, ErrFailed
		}
	}
	if err := s.onSuccess(address); err != nil {
		return nil, true, err
	}
	return nil, true, nil
}

// parsePlain splits a PLAIN message. RFC 4616 2:
//
//	message = [authzid] UTF8NUL authcid UTF8NUL passwd
//	authcid = 1*SAFE ; MUST accept up to 255 octets
//	passwd  = 1*SAFE ; MUST accept up to 255 octets
//	SAFE    = UTF1 / UTF2 / UTF3 / UTF4 ; any UTF-8 except NUL
func (db *DB) parsePlain(msg []byte) (authzid, authcid, passwd string, err error) {
	if err := db.checkResponse(msg); err != nil {
		return "", "", "", err
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: PLAIN message needs exactly two NULs, has %d", ErrMalformed, len(parts)-1)
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", fmt.Errorf("%w: PLAIN authcid or passwd is empty", ErrMalformed)
	}
	if !utf8.Valid(msg) {
		return "", "", "", fmt.Errorf("%w: PLAIN message is not UTF-8", ErrMalformed)
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// NewLoginServer returns a server for the LOGIN mechanism
// (draft-murchison-sasl-login), which is not standard but is what Outlook
// and many older clients use: the server prompts "Username:" and then
// "Password:", and each answer is the bare value. A client may send the user
// name as an initial response. onSuccess receives the canonical address.
func (db *DB) NewLoginServer(onSuccess func(address string) error) sasl.Server {
	return &loginServer{db: db, onSuccess: onSuccess}
}

type loginState int

const (
	loginStart loginState = iota
	loginWantUser
	loginWantPassword
	loginDone
)

type loginServer struct {
	db        *DB
	onSuccess func(string) error
	state     loginState
	username  string
}

func (s *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	if err := s.db.checkResponse(resp); err != nil {
		s.state = loginDone
		return nil, true, err
	}
	switch s.state {
	case loginStart:
		// An empty initial response carries no user name: prompt for it.
		if len(resp) == 0 {
			s.state = loginWantUser
			return loginUserChallenge, false, nil
		}
		fallthrough
	case loginWantUser:
		if len(resp) == 0 || bytes.IndexByte(resp, 0) >= 0 || !utf8.Valid(resp) {
			s.state = loginDone
			return nil, true, fmt.Errorf("%w: LOGIN user name is empty, has a NUL or is not UTF-8", ErrMalformed)
		}
		s.username = string(resp)
		s.state = loginWantPassword
		return loginPasswordChallenge, false, nil
	case loginWantPassword:
		s.state = loginDone
		// The password is taken as sent: LOGIN predates any rule on its
		// encoding, and Authenticate fails an empty one.
		address, err := s.db.Authenticate(s.username, string(resp))
		if err != nil {
			return nil, true, err
		}
		if err := s.onSuccess(address); err != nil {
			return nil, true, err
		}
		return nil, true, nil
	default:
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
}
