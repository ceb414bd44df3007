package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"tern/common/config"
)

// MTASTSPolicy is the policy file served at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt for every local domain
// (RFC 8461 3.2): the mode of webd.mta_sts_mode, the mail host as the
// only MX, max_age from webd.mta_sts_max_age. Lines end in CRLF.
func MTASTSPolicy(cfg *config.Config) string {
	return fmt.Sprintf("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		cfg.WebD.MTASTSMode, cfg.PublicHost(), int64(cfg.WebD.MTASTSMaxAge.D()/time.Second))
}

// MTASTSPolicyID is the id of the _mta-sts TXT record (RFC 8461 3.1: 1 to
// 32 letters and digits): a digest of the policy, so that it changes
// exactly when the policy does and senders fetch the new one.
func MTASTSPolicyID(cfg *config.Config) string {
	sum := sha256.Sum256([]byte(MTASTSPolicy(cfg)))
	return hex.EncodeToString(sum[:10])
}
