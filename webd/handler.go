package main

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"

	"tern/common/config"
	"tern/common/maillog"
	"tern/common/publish"
)

// Paths served. Nothing else is: webd is not a general web server.
const (
	pathMTASTS          = "/.well-known/mta-sts.txt"
	pathAutoconfig      = "/mail/config-v1.1.xml"
	pathAutoconfigWK    = "/.well-known/autoconfig/mail/config-v1.1.xml"
	pathAutodiscover    = "/autodiscover/autodiscover.xml"
	pathMobileConfig    = "/mail/profile.mobileconfig"
	pathACMEChallengeWK = "/.well-known/acme-challenge/"
)

// handler is webd's whole web face.
type handler struct {
	cfg *config.Config
	log *slog.Logger
	// challenges are the pending ACME http-01 key authorizations by token
	// (RFC 8555 8.3), set by the certificate manager.
	challenges *challenges
}

// challenges is the set of pending http-01 answers and tls-alpn-01
// certificates.
type challenges struct {
	mu   sync.Mutex
	m    map[string]string
	alpn map[string]*tls.Certificate // by host name
}

func (c *challenges) setALPN(host string, cert *tls.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alpn == nil {
		c.alpn = map[string]*tls.Certificate{}
	}
	c.alpn[host] = cert
}

func (c *challenges) removeALPN(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.alpn, host)
}

// tlsConfigFor answers a TLS-ALPN-01 validation (RFC 8737 3): a client
// that offers only the acme-tls/1 protocol for a name with a pending
// challenge gets the challenge certificate and that protocol; any other
// client gets base (nil).
func (c *challenges) tlsConfigFor(base *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
			return nil, nil
		}
		c.mu.Lock()
		cert := c.alpn[strings.ToLower(hello.ServerName)]
		c.mu.Unlock()
		if cert == nil {
			return nil, fmt.Errorf("no tls-alpn-01 challenge for %q", hello.ServerName)
		}
		cfg := base.Clone()
		cfg.GetCertificate = nil
		cfg.GetConfigForClient = nil
		cfg.Certificates = []tls.Certificate{*cert}
		cfg.NextProtos = []string{acme.ALPNProto}
		return cfg, nil
	}
}

func (c *challenges) set(token, keyAuth string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[token] = keyAuth
}

func (c *challenges) remove(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, token)
}

func (c *challenges) get(token string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[token]
	return v, ok
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	host := requestHost(r)
	path := r.URL.Path
	h.log.Debug("request", "method", r.Method, "host", host, "path", path, "tls", r.TLS != nil, "ip", r.RemoteAddr)
	switch {
	case strings.HasPrefix(path, pathACMEChallengeWK):
		h.acmeChallenge(w, r, strings.TrimPrefix(path, pathACMEChallengeWK))
	case path == pathMTASTS:
		h.mtaSTS(w, r, host)
	case path == pathAutoconfig || path == pathAutoconfigWK:
		h.autoconfig(w, r, host)
	case strings.EqualFold(path, pathAutodiscover):
		h.autodiscover(w, r)
	case path == pathMobileConfig:
		h.mobileConfig(w, r)
	default:
		http.NotFound(w, r)
	}
}

// requestHost is the Host header without port, lower case.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

func onlyGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// acmeChallenge answers an http-01 validation request (RFC 8555 8.3): the
// key authorization of a pending token, as text, on plain HTTP.
func (h *handler) acmeChallenge(w http.ResponseWriter, r *http.Request, token string) {
	if !onlyGet(w, r) {
		return
	}
	keyAuth, ok := h.challenges.get(token)
	if !ok {
		http.NotFound(w, r)
		return
	}
	maillog.ACMEChallenge(h.log, requestHost(r))
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, keyAuth)
}

// mtaSTS serves the policy (RFC 8461 3.3): over HTTPS only, at
// mta-sts.DOMAIN for a local DOMAIN, as text/plain, with no redirect.
func (h *handler) mtaSTS(w http.ResponseWriter, r *http.Request, host string) {
	if !onlyGet(w, r) {
		return
	}
	domain, ok := strings.CutPrefix(host, "mta-sts.")
	if r.TLS == nil || !ok || !h.cfg.IsLocalDomain(domain) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "max-age=300")
	io.WriteString(w, publish.MTASTSPolicy(h.cfg))
}

// autoconfig serves Thunderbird's configuration. The domain is the one of
// the emailaddress parameter, or the host autoconfig.DOMAIN; only local
// domains are answered.
func (h *handler) autoconfig(w http.ResponseWriter, r *http.Request, host string) {
	if !onlyGet(w, r) {
		return
	}
	domain, ok := "", false
	if a := r.URL.Query().Get("emailaddress"); a != "" {
		domain, ok = publish.LocalDomainOf(h.cfg, a)
	} else if d, cut := strings.CutPrefix(host, "autoconfig."); cut {
		domain, ok = d, h.cfg.IsLocalDomain(d)
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write(publish.Autoconfig(h.cfg, domain))
}

// autodiscover answers Outlook's POX request (MS-OXDSCLI 3.1.5): POST of
// an Autodiscover document naming the address.
func (h *handler) autodiscover(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body := http.MaxBytesReader(w, r.Body, int64(h.cfg.WebD.MaxRequestSize))
	var req publish.AutodiscoverRequest
	if err := xml.NewDecoder(body).Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad autodiscover request", http.StatusBadRequest)
		return
	}
	address := strings.TrimSpace(req.Request.EMailAddress)
	if _, ok := publish.LocalDomainOf(h.cfg, address); !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write(publish.Autodiscover(h.cfg, address))
}

// mobileConfig serves the Apple configuration profile for
// ?emailaddress=ADDRESS in a local domain. Whether the user exists is not
// checked, so the page cannot be used to find addresses.
func (h *handler) mobileConfig(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	address := r.URL.Query().Get("emailaddress")
	if _, ok := publish.LocalDomainOf(h.cfg, address); !ok || strings.ContainsAny(address, "\r\n\"<>&/ ") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="mail.mobileconfig"`)
	w.Write(publish.MobileConfig(h.cfg, address))
}
