package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"strings"

	"tern/common/config"
)

// Thunderbird's autoconfig format, version 1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type tbConfig struct {
	XMLName  xml.Name   `xml:"clientConfig"`
	Version  string     `xml:"version,attr"`
	Provider tbProvider `xml:"emailProvider"`
}

type tbProvider struct {
	ID               string     `xml:"id,attr"`
	Domain           []string   `xml:"domain"`
	DisplayName      string     `xml:"displayName"`
	DisplayShortName string     `xml:"displayShortName"`
	Incoming         []tbServer `xml:"incomingServer"`
	Outgoing         []tbServer `xml:"outgoingServer"`
}

type tbServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// Autoconfig is Thunderbird's configuration for a local domain. The user
// name is the whole address (%EMAILADDRESS%), as the users file keys it.
func Autoconfig(cfg *config.Config, domain string) []byte {
	c := tbConfig{Version: "1.1", Provider: tbProvider{
		ID: domain, Domain: []string{domain}, DisplayName: domain, DisplayShortName: domain,
	}}
	for _, s := range Services(cfg) {
		srv := tbServer{Type: s.Kind, Hostname: cfg.PublicHost(), Port: s.Port, SocketType: "STARTTLS",
			Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
		if s.TLS {
			srv.SocketType = "SSL"
		}
		if s.Kind == "submission" {
			srv.Type = "smtp"
			c.Provider.Outgoing = append(c.Provider.Outgoing, srv)
		} else {
			c.Provider.Incoming = append(c.Provider.Incoming, srv)
		}
	}
	return marshal(c)
}

// Outlook's POX autodiscover response (MS-OXDSCLI), the "settings" form.
type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocol    []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	}
}

type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption"`
	AuthRequired   string `xml:"AuthRequired"`
}

// AutodiscoverRequest is the part of Outlook's request that matters.
type AutodiscoverRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// Autodiscover is the response for address: one Protocol per service,
// implicit TLS first, so Outlook takes those.
func Autodiscover(cfg *config.Config, address string) []byte {
	var r adResponse
	r.Response.Account.AccountType = "email"
	r.Response.Account.Action = "settings"
	for _, s := range Services(cfg) {
		p := adProtocol{Type: strings.ToUpper(s.Kind), Server: cfg.PublicHost(), Port: s.Port,
			LoginName: address, DomainRequired: "off", SPA: "off", SSL: "on",
			Encryption: "TLS", AuthRequired: "on"}
		if s.Kind == "submission" {
			p.Type = "SMTP"
		}
		if s.TLS {
			p.Encryption = "SSL"
		}
		r.Response.Account.Protocol = append(r.Response.Account.Protocol, p)
	}
	return marshal(r)
}

func marshal(v any) []byte {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		// The types above always marshal.
		panic(fmt.Sprintf("publish: marshal %T: %v", v, err))
	}
	return append([]byte(xml.Header), append(b, '\n')...)
}

// MobileConfig is an Apple configuration profile (an XML property list,
// unsigned) that sets up address in Apple Mail: IMAP and submission, each
// with implicit TLS when it is configured, else STARTTLS. Its UUIDs are
// derived from the address, so downloading it again replaces the account
// rather than adding a second one.
func MobileConfig(cfg *config.Config, address string) []byte {
	var imap, smtp *Service
	for _, s := range Services(cfg) {
		s := s
		switch {
		case s.Kind == "imap" && imap == nil:
			imap = &s
		case s.Kind == "submission" && smtp == nil:
			smtp = &s
		}
	}
	host := cfg.PublicHost()
	id := reverse(host) + ".tern.mail." + strings.ReplaceAll(address, "@", ".")
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	kv := func(indent, k, typ, v string) {
		b.WriteString(indent + "<key>")
		xml.EscapeText(&b, []byte(k))
		b.WriteString("</key>\n" + indent)
		switch typ {
		case "bool":
			b.WriteString("<" + v + "/>\n")
		default:
			b.WriteString("<" + typ + ">")
			xml.EscapeText(&b, []byte(v))
			b.WriteString("</" + typ + ">\n")
		}
	}
	yes := func(ok bool) string {
		if ok {
			return "true"
		}
		return "false"
	}
	b.WriteString("  <key>PayloadContent</key>\n  <array>\n    <dict>\n")
	in := "      "
	kv(in, "EmailAccountDescription", "string", address)
	kv(in, "EmailAccountName", "string", address)
	kv(in, "EmailAccountType", "string", "EmailTypeIMAP")
	kv(in, "EmailAddress", "string", address)
	if imap != nil {
		kv(in, "IncomingMailServerAuthentication", "string", "EmailAuthPassword")
		kv(in, "IncomingMailServerHostName", "string", host)
		kv(in, "IncomingMailServerPortNumber", "integer", fmt.Sprint(imap.Port))
		kv(in, "IncomingMailServerUseSSL", "bool", yes(imap.TLS))
		kv(in, "IncomingMailServerUsername", "string", address)
	}
	if smtp != nil {
		kv(in, "OutgoingMailServerAuthentication", "string", "EmailAuthPassword")
		kv(in, "OutgoingMailServerHostName", "string", host)
		kv(in, "OutgoingMailServerPortNumber", "integer", fmt.Sprint(smtp.Port))
		kv(in, "OutgoingMailServerUseSSL", "bool", yes(smtp.TLS))
		kv(in, "OutgoingMailServerUsername", "string", address)
		kv(in, "OutgoingPasswordSameAsIncomingPassword", "bool", "true")
	}
	kv(in, "PayloadDescription", "string", "Mail account "+address)
	kv(in, "PayloadDisplayName", "string", address)
	kv(in, "PayloadIdentifier", "string", id+".account")
	kv(in, "PayloadType", "string", "com.apple.mail.managed")
	kv(in, "PayloadUUID", "string", uuidOf(id+".account"))
	kv(in, "PayloadVersion", "integer", "1")
	b.WriteString("    </dict>\n  </array>\n")
	kv("  ", "PayloadDescription", "string", "Mail settings for "+address)
	kv("  ", "PayloadDisplayName", "string", "Mail: "+address)
	kv("  ", "PayloadIdentifier", "string", id)
	kv("  ", "PayloadRemovalDisallowed", "bool", "false")
	kv("  ", "PayloadType", "string", "Configuration")
	kv("  ", "PayloadUUID", "string", uuidOf(id))
	kv("  ", "PayloadVersion", "integer", "1")
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes()
}

// reverse turns mail.example.test into test.example.mail, the reverse-DNS
// style of payload identifiers.
func reverse(host string) string {
	parts := strings.Split(host, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// uuidOf is a name-based UUID (RFC 9562 5.8, version 8 with SHA-256) of s.
func uuidOf(s string) string {
	h := sha256.Sum256([]byte(s))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
