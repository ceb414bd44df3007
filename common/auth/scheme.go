package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/GehirnInc/crypt"
	"github.com/GehirnInc/crypt/sha256_crypt"
	"github.com/GehirnInc/crypt/sha512_crypt"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrUnknownScheme is returned for a password scheme this package cannot
// check or produce.
var ErrUnknownScheme = errors.New("auth: unknown password scheme")

// Parameters of the hashes HashPassword makes. They match what Dovecot's
// doveadm pw writes by default, except bcrypt, where Dovecot's cost 5 is too
// cheap today and the library's default is used instead.
const (
	hashBcryptCost     = bcrypt.DefaultCost
	hashArgon2Time     = 3
	hashArgon2MemoryKB = 64 * 1024
	hashArgon2Threads  = 1
	hashArgon2SaltLen  = 16
	hashArgon2KeyLen   = 32
)

// Lengths of the encoded checksum of SHA-crypt hashes (Drepper's
// SHA-crypt.txt): 512 and 256 bits in crypt's base-64 alphabet.
const (
	sha512CryptSumLen = 86
	sha256CryptSumLen = 43
)

// Argon2 limits from the Argon2 specification (RFC 9106 3.1): at least 8 KiB
// of memory per lane, a salt of at least 8 bytes and a tag of at least 4.
const (
	argon2MinMemoryPerLane = 8
	argon2MinSaltLen       = 8
	argon2MinKeyLen        = 4
)

// A verifier checks a password against one stored hash. It is built when the
// users file is loaded, so that a malformed hash is found then, not at the
// first login.
type verifier interface {
	verify(password []byte) bool
}

// plainVerifier compares SHA-256 digests rather than the passwords
// themselves: subtle.ConstantTimeCompare returns early when the lengths
// differ, which would reveal the length of the stored password.
type plainVerifier struct{ sum [sha256.Size]byte }

func (v plainVerifier) verify(password []byte) bool {
	sum := sha256.Sum256(password)
	return subtle.ConstantTimeCompare(sum[:], v.sum[:]) == 1
}

// bcryptVerifier checks BLF-CRYPT; bcrypt compares in constant time.
type bcryptVerifier struct{ hash []byte }

func (v bcryptVerifier) verify(password []byte) bool {
	return bcrypt.CompareHashAndPassword(v.hash, password) == nil
}

// shaCryptVerifier checks SHA512-CRYPT and SHA256-CRYPT; the crypt package
// compares in constant time.
type shaCryptVerifier struct {
	newCrypter func() crypt.Crypter
	hash       string
}

func (v shaCryptVerifier) verify(password []byte) bool {
	return v.newCrypter().Verify(v.hash, password) == nil
}

// argon2Verifier checks ARGON2ID and ARGON2I.
type argon2Verifier struct {
	id       bool // argon2id; argon2i otherwise
	time     uint32
	memoryKB uint32
	threads  uint8
	salt     []byte
	key      []byte
}

func (v argon2Verifier) verify(password []byte) bool {
	derive := argon2.Key
	if v.id {
		derive = argon2.IDKey
	}
	key := derive(password, v.salt, v.time, v.memoryKB, v.threads, uint32(len(v.key)))
	return subtle.ConstantTimeCompare(key, v.key) == 1
}

// splitScheme splits "{SCHEME}data" into the upper-case scheme and the data.
// Without a {SCHEME} prefix the scheme is CRYPT, as in Dovecot's
// passwd-file.
func splitScheme(field string) (scheme, data string, err error) {
	if !strings.HasPrefix(field, "{") {
		return "CRYPT", field, nil
	}
	end := strings.IndexByte(field, '}')
	if end < 0 {
		return "", "", errors.New("password scheme: missing '}'")
	}
	return strings.ToUpper(field[1:end]), field[end+1:], nil
}

// cryptScheme names the scheme of a crypt(3) string by its prefix, for the
// CRYPT scheme, or returns "" when the prefix is not one this package knows.
func cryptScheme(data string) string {
	switch {
	case strings.HasPrefix(data, "$2a$"), strings.HasPrefix(data, "$2b$"), strings.HasPrefix(data, "$2y$"):
		return "BLF-CRYPT"
	case strings.HasPrefix(data, sha512_crypt.MagicPrefix):
		return "SHA512-CRYPT"
	case strings.HasPrefix(data, sha256_crypt.MagicPrefix):
		return "SHA256-CRYPT"
	case strings.HasPrefix(data, "$argon2id$"):
		return "ARGON2ID"
	case strings.HasPrefix(data, "$argon2i$"):
		return "ARGON2I"
	}
	return ""
}

// parsePassword builds the verifier for a password field. An error wrapping
// ErrUnknownScheme means the scheme is not supported (the user cannot log
// in); any other error means the data does not fit its scheme.
func parsePassword(field string) (scheme string, v verifier, err error) {
	scheme, data, err := splitScheme(field)
	if err != nil {
		return "", nil, err
	}
	if scheme == "CRYPT" {
		if s := cryptScheme(data); s != "" {
			scheme = s
		} else {
			return scheme, nil, fmt.Errorf("%w: CRYPT hash of an unknown kind", ErrUnknownScheme)
		}
	}
	switch scheme {
	case "PLAIN", "CLEARTEXT", "CLEAR":
		v, err = plainVerifier{sum: sha256.Sum256([]byte(data))}, nil
	case "BLF-CRYPT":
		v, err = parseBcrypt(data)
	case "SHA512-CRYPT":
		v, err = parseSHACrypt(data, sha512_crypt.MagicPrefix, sha512CryptSumLen, sha512_crypt.New)
	case "SHA256-CRYPT":
		v, err = parseSHACrypt(data, sha256_crypt.MagicPrefix, sha256CryptSumLen, sha256_crypt.New)
	case "ARGON2ID":
		v, err = parseArgon2(data, "argon2id")
	case "ARGON2I":
		v, err = parseArgon2(data, "argon2i")
	default:
		return scheme, nil, fmt.Errorf("%w %q", ErrUnknownScheme, scheme)
	}
	if err != nil {
		return scheme, nil, fmt.Errorf("%s password: %w", scheme, err)
	}
	return scheme, v, nil
}

func parseBcrypt(data string) (verifier, error) {
	// $2x$ marks hashes from the buggy pre-2011 crypt_blowfish, which this
	// implementation does not reproduce; $2y$ is what Dovecot and PHP write.
	if cryptScheme(data) != "BLF-CRYPT" {
		return nil, errors.New("want a $2a$, $2b$ or $2y$ bcrypt hash")
	}
	if _, err := bcrypt.Cost([]byte(data)); err != nil {
		return nil, err
	}
	return bcryptVerifier{hash: []byte(data)}, nil
}

// parseSHACrypt checks the shape of "$N$[rounds=R$]salt$checksum" (Drepper's
// SHA-crypt.txt).
func parseSHACrypt(data, prefix string, sumLen int, newCrypter func() crypt.Crypter) (verifier, error) {
	if !strings.HasPrefix(data, prefix) {
		return nil, fmt.Errorf("want a hash starting with %q", prefix)
	}
	if _, err := newCrypter().Cost(data); err != nil {
		return nil, err
	}
	sum := data[strings.LastIndexByte(data, '$')+1:]
	if len(sum) != sumLen || strings.Trim(sum, cryptAlphabet) != "" || strings.Count(data, "$") < 3 {
		return nil, errors.New("malformed checksum")
	}
	return shaCryptVerifier{newCrypter: newCrypter, hash: data}, nil
}

// cryptAlphabet is the base-64 alphabet of crypt(3) strings.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// parseArgon2 parses a PHC string, $argon2id$v=19$m=65536,t=3,p=1$salt$hash,
// with salt and hash in unpadded standard base 64 (the PHC string format, as
// libsodium and Dovecot write it).
func parseArgon2(data, variant string) (verifier, error) {
	parts := strings.Split(data, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != variant {
		return nil, fmt.Errorf("want $%s$v=19$m=...,t=...,p=...$salt$hash", variant)
	}
	// Only version 0x13 (19) of Argon2 exists in x/crypto/argon2.
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("unsupported version %q", parts[2])
	}
	v := argon2Verifier{id: variant == "argon2id"}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("malformed parameter %q", kv)
		}
		seen[k] = true
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", kv, err)
		}
		switch k {
		case "m":
			v.memoryKB = uint32(n)
		case "t":
			v.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("parameter %q: too many lanes", kv)
			}
			v.threads = uint8(n)
		default:
			return nil, fmt.Errorf("unknown parameter %q", kv)
		}
	}
	if v.time < 1 || v.threads < 1 || v.memoryKB < argon2MinMemoryPerLane*uint32(v.threads) {
		return nil, fmt.Errorf("parameters %q out of range", parts[3])
	}
	var err error
	if v.salt, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[4], "=")); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	if v.key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[5], "=")); err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	if len(v.salt) < argon2MinSaltLen || len(v.key) < argon2MinKeyLen {
		return nil, errors.New("salt or hash too short")
	}
	return v, nil
}

// HashPassword returns password hashed with scheme, prefixed with {SCHEME},
// ready for the password field of the users file. It supports PLAIN,
// BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT and ARGON2ID, with fresh random
// salts.
func HashPassword(scheme, password string) (string, error) {
	scheme = strings.ToUpper(scheme)
	pw := []byte(password)
	var data string
	switch scheme {
	case "PLAIN", "CLEARTEXT":
		// The users file has no quoting: these would end the field or line.
		if strings.ContainsAny(password, ":\r\n") {
			return "", fmt.Errorf("%s password cannot contain ':' or a line break", scheme)
		}
		data = password
	case "BLF-CRYPT":
		h, err := bcrypt.GenerateFromPassword(pw, hashBcryptCost)
		if err != nil {
			return "", fmt.Errorf("bcrypt: %w", err)
		}
		data = string(h)
	case "SHA512-CRYPT", "SHA256-CRYPT":
		c := sha512_crypt.New()
		if scheme == "SHA256-CRYPT" {
			c = sha256_crypt.New()
		}
		h, err := c.Generate(pw, nil)
		if err != nil {
			return "", fmt.Errorf("%s: %w", scheme, err)
		}
		data = h
	case "ARGON2ID":
		salt := make([]byte, hashArgon2SaltLen)
		if _, err := rand.Read(salt); err != nil {
			return "", fmt.Errorf("argon2 salt: %w", err)
		}
		key := argon2.IDKey(pw, salt, hashArgon2Time, hashArgon2MemoryKB, hashArgon2Threads, hashArgon2KeyLen)
		data = fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", hashArgon2MemoryKB, hashArgon2Time, hashArgon2Threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	default:
		return "", fmt.Errorf("%w %q", ErrUnknownScheme, scheme)
	}
	return "{" + scheme + "}" + data, nil
}
