package node

import (
	"context"
	"fmt"
	"net"

	"github.com/ferryci/ferry/internal/nodeproto"
)

func init() {
	registerProbe("tcp", probeKind{
		validate: func(hc *nodeproto.HealthCheck) error {
			if _, _, err := net.SplitHostPort(hc.Address); err != nil {
				return fmt.Errorf("address %q: the tcp check needs host:port", hc.Address)
			}
			return nil
		},
		new: func(hc *nodeproto.HealthCheck, _ runFunc) Probe { return tcpProbe{addr: hc.Address} },
	})
}

// tcpProbe is healthy when a TCP connection opens.
type tcpProbe struct{ addr string }

func (p tcpProbe) Probe(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	return c.Close()
}
