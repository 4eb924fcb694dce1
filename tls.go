package tether

import (
	stdtls "crypto/tls"
	"fmt"

	nbtls "github.com/lesismal/llib/std/crypto/tls"
)

// tlsConfigs holds one certificate in the two forms the listeners need: nbio's
// event loop runs llib's fork of crypto/tls, gRPC the standard one.
type tlsConfigs struct {
	nb  *nbtls.Config
	std *stdtls.Config
}

// loadTLS reads the certificate and key; it returns nil when TLS is off.
func loadTLS(certFile, keyFile string) (*tlsConfigs, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := stdtls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tether: load TLS certificate: %w", err)
	}
	return &tlsConfigs{
		nb: &nbtls.Config{
			Certificates: []nbtls.Certificate{{
				Certificate: cert.Certificate,
				PrivateKey:  cert.PrivateKey,
				Leaf:        cert.Leaf,
			}},
			MinVersion: nbtls.VersionTLS12,
			// Full-size records: fewer bytes of overhead between what a
			// connection queues and what leaves (see the outbound limit).
			DynamicRecordSizingDisabled: true,
		},
		std: &stdtls.Config{
			Certificates: []stdtls.Certificate{cert},
			MinVersion:   stdtls.VersionTLS12,
			NextProtos:   []string{"h2"},
		},
	}, nil
}

// scheme returns plain or tls, as listeners' URLs need.
func (t *tlsConfigs) scheme(plain, secure string) string {
	if t == nil {
		return plain
	}
	return secure
}
