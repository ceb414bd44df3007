// Package dkim holds tern's DKIM keys (RFC 6376, RFC 8463) and signs
// messages with them: smtpd signs mail submitted from a local domain, and
// `mailq -dkim-keygen` makes a domain's key and prints the DNS record that
// publishes its public half.
//
// A key file is PEM: "PRIVATE KEY" (PKCS#8, ed25519 or RSA) or "RSA
// PRIVATE KEY" (PKCS#1), the formats openssl and opendkim-genkey write.
// The file is read for each message, so a new or rotated key takes effect
// without a restart.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"tern/common/config"
	"tern/common/safeio"
)

var (
	// ErrNoKey means the domain has no key file: its mail goes unsigned.
	ErrNoKey = errors.New("dkim: no key for the domain")
	// ErrBadKey means the key file is not a key this package can use.
	ErrBadKey = errors.New("dkim: unusable key")
)

// RSABits is the size of the RSA keys GenerateKey makes: RFC 8301 3.2
// requires at least 1024 bits and recommends 2048.
const RSABits = 2048

// KeyPath is the key file of domain under template (%d: the domain).
func KeyPath(template, domain string) string {
	return strings.ReplaceAll(template, "%d", strings.ToLower(domain))
}

// LoadKey reads the private key at path. A missing file is ErrNoKey.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read DKIM key: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads a PEM private key: ed25519 or RSA (at least 1024 bits,
// RFC 8301 3.2).
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q", ErrBadKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("%w: RSA key of %d bits (RFC 8301 3.2: at least 1024)", ErrBadKey, k.N.BitLen())
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T is neither ed25519 nor RSA", ErrBadKey, key)
}

// GenerateKey makes a new key, "ed25519" or "rsa", and returns it with
// its PEM (PKCS#8) encoding.
func GenerateKey(alg string) (crypto.Signer, []byte, error) {
	var key crypto.Signer
	switch alg {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, RSABits)
		if err != nil {
			return nil, nil, err
		}
		key = k
	default:
		return nil, nil, fmt.Errorf("%w: algorithm %q (want ed25519 or rsa)", ErrBadKey, alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TXTRecord is the DNS TXT record that publishes key's public half
// (RFC 6376 3.6.1; k=ed25519 from RFC 8463 4).
func TXTRecord(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	}
	return "", fmt.Errorf("%w: %T", ErrBadKey, key.Public())
}

// ZoneLines is the TXT record of TXTRecord as a zone-file line, split
// into strings of at most 255 bytes (RFC 1035 3.3.14: a character-string
// is at most 255 bytes long; an RSA-2048 record is longer).
func ZoneLines(selector, domain, record string) string {
	var parts []string
	for len(record) > 0 {
		n := min(len(record), 250)
		parts = append(parts, `"`+record[:n]+`"`)
		record = record[n:]
	}
	return fmt.Sprintf("%s._domainkey.%s. IN TXT ( %s )", selector, domain, strings.Join(parts, "\n\t"))
}

// WriteKey writes a key file durably (common/safeio): temp file (mode
// 0600, the key is secret) → fsync → link to path (never replacing an
// existing key) → fsync of the directory.
func WriteKey(path string, pemData []byte) error {
	if err := safeio.LinkFile(path, pemData, 0o600); err != nil {
		return fmt.Errorf("write DKIM key: %w", err)
	}
	return nil
}

// SignFor signs a message for domain as tern.toml's [dkim] says: the
// domain's key file from the key template, the selector and the fields to
// sign. A domain without a key file gives ErrNoKey (its mail goes
// unsigned); a key that cannot be read or used is another error. This is
// the one place that turns the configuration into a signature, for
// submitted mail (smtpd) and the TLS reports (the courier).
func SignFor(c config.DKIM, domain string, header []byte, body io.Reader) (string, error) {
	path := KeyPath(c.Key, domain)
	key, err := LoadKey(path)
	if err != nil {
		return "", err
	}
	return Sign(header, body, domain, c.Selector, key, c.Headers)
}

// Sign signs a message, its header (every field, CRLF line endings, the
// empty line after it may be left out) and its body, for domain with key,
// and returns the DKIM-Signature header field, CRLF included, to put on
// top of the message. Canonicalization is relaxed/relaxed (RFC 6376 3.4),
// which survives the whitespace changes of relays. headers are the fields
// to sign; From is signed once more than it appears (RFC 6376 8.15), so
// that none can be added.
func Sign(header []byte, body io.Reader, domain, selector string, key crypto.Signer, headers []string) (string, error) {
	header = bytes.TrimSuffix(header, []byte("\r\n\r\n"))
	header = bytes.TrimSuffix(header, []byte("\r\n"))
	present := headerNames(header)
	var keys []string
	for _, h := range headers {
		n := present[strings.ToLower(h)]
		if strings.EqualFold(h, "From") {
			n++
		}
		for range n {
			keys = append(keys, h)
		}
	}
	s, err := msgdkim.NewSigner(&msgdkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	msg := io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n\r\n"), body)
	if _, err := io.Copy(s, msg); err != nil {
		s.Close()
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	return s.Signature(), nil
}

// headerNames counts the fields of a header by lower-case name.
func headerNames(header []byte) map[string]int {
	names := map[string]int{}
	for _, l := range bytes.Split(header, []byte("\n")) {
		if len(l) == 0 || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if i := bytes.IndexByte(l, ':'); i > 0 {
			names[strings.ToLower(strings.TrimSpace(string(l[:i])))]++
		}
	}
	return names
}
