package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"tern/common/config"
	"tern/common/mtasts"
)

// MTASTSPolicy is the policy file served at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt for every local domain
// (RFC 8461 3.2): the mode of webd.mta_sts_mode, the mail host as the
// only MX, max_age from webd.mta_sts_max_age. Lines end in CRLF.
// The document is written by common/mtasts, the package whose Parse
// smtpd's outbound delivery uses, so tern publishes exactly what it
// would accept from another domain.
func MTASTSPolicy(cfg *config.Config) string {
	p := mtasts.Policy{
		Mode:   mtasts.Mode(cfg.WebD.MTASTSMode),
		MX:     []string{cfg.PublicHost()},
		MaxAge: cfg.WebD.MTASTSMaxAge.D().Truncate(time.Second),
	}
	return p.String()
}

// MTASTSPolicyID is the id of the _mta-sts TXT record (RFC 8461 3.1: 1 to
// 32 letters and digits): a digest of the policy, so that it changes
// exactly when the policy does and senders fetch the new one.
func MTASTSPolicyID(cfg *config.Config) string {
	sum := sha256.Sum256([]byte(MTASTSPolicy(cfg)))
	return hex.EncodeToString(sum[:10])
}
