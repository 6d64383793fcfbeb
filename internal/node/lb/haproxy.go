package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func init() { Register("haproxy", newHAProxy) }

// HAProxy's server administrative flags (srv_admin_state in "show servers
// state"), from its server.h.
const (
	admMaint  = 0x01 | 0x02 | 0x04 | 0x20 | 0x40 // forced, inherited, config, resolution, health-check maintenance
	admDrain  = 0x08 | 0x10                      // forced and inherited drain
	opRunning = 2                                // srv_op_state: running
)

// pollInterval is how often the driver reads HAProxy's state while
// waiting.
const pollInterval = 25 * time.Millisecond

// HAProxy drives one server through HAProxy's runtime API on its stats
// socket ("stats socket /run/haproxy/admin.sock level admin"): "set server
// BE/SRV state drain" and "… state ready", reading the result back with
// "show servers state" and the sessions in flight with "show stat".
type HAProxy struct {
	c Config
}

var (
	_ Driver  = (*HAProxy)(nil)
	_ Checker = (*HAProxy)(nil)
)

func newHAProxy(c Config, _ Exec) (Driver, error) {
	if c.Socket == "" || c.Backend == "" || c.Server == "" {
		return nil, errors.New("lb: the haproxy driver needs socket, backend and server")
	}
	return &HAProxy{c: c}, nil
}

// Drain sets the server to drain, then waits until HAProxy reports it
// drained with no session in flight.
func (h *HAProxy) Drain(ctx context.Context) error {
	if err := h.set(ctx, "drain"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.c.DrainTimeout)
	defer cancel()
	var last string
	for {
		st, err := h.State(ctx)
		if err == nil {
			cur, err2 := h.sessions(ctx)
			switch {
			case err2 != nil:
				err = err2
			case st.Admin&admDrain != 0 && cur == 0:
				return nil
			default:
				last = fmt.Sprintf("admin state %#x, %d sessions", st.Admin, cur)
			}
		}
		if err != nil && !cutShort(ctx, err) {
			last = err.Error()
		}
		if wait(ctx) != nil {
			return fmt.Errorf("haproxy %s/%s: %w (%s)", h.c.Backend, h.c.Server, ErrDrainTimeout, last)
		}
	}
}

// Ready sets the server to ready, then waits until it is running and
// neither drained nor in maintenance.
func (h *HAProxy) Ready(ctx context.Context) error {
	if err := h.set(ctx, "ready"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.c.ReadyTimeout)
	defer cancel()
	var last string
	for {
		st, err := h.State(ctx)
		switch {
		case err != nil:
			if !cutShort(ctx, err) {
				last = err.Error()
			}
		case st.Op == opRunning && st.Admin&(admDrain|admMaint) == 0:
			return nil
		default:
			last = fmt.Sprintf("operational state %d, admin state %#x", st.Op, st.Admin)
		}
		if wait(ctx) != nil {
			return fmt.Errorf("haproxy %s/%s: not taking requests after %s (%s)", h.c.Backend, h.c.Server, h.c.ReadyTimeout, last)
		}
	}
}

// cutShort reports whether err is the wait's own deadline ending a
// command (the dial and the connection share it), which says nothing of
// HAProxy's state.
func cutShort(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

func wait(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (h *HAProxy) set(ctx context.Context, state string) error {
	out, err := h.Command(ctx, fmt.Sprintf("set server %s/%s state %s", h.c.Backend, h.c.Server, state))
	if err != nil {
		return err
	}
	if out = strings.TrimSpace(out); out != "" {
		// Success prints nothing; anything else is HAProxy's error.
		return fmt.Errorf("haproxy: set server %s/%s state %s: %s", h.c.Backend, h.c.Server, state, out)
	}
	return nil
}

// ServerState is a server's line of "show servers state".
type ServerState struct {
	// Op is srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping.
	Op int
	// Admin is srv_admin_state, HAProxy's administrative flags.
	Admin int
}

// Drained reports whether the server is in drain mode.
func (s ServerState) Drained() bool { return s.Admin&admDrain != 0 }

// InRotation reports whether HAProxy's administrative state lets requests
// reach the server: neither drained nor in maintenance (its health checks
// may still hold it down).
func (h *HAProxy) InRotation(ctx context.Context) (bool, error) {
	st, err := h.State(ctx)
	if err != nil {
		return false, err
	}
	return st.Admin&(admDrain|admMaint) == 0, nil
}

// State reads the server's state with "show servers state BACKEND".
func (h *HAProxy) State(ctx context.Context) (ServerState, error) {
	out, err := h.Command(ctx, "show servers state "+h.c.Backend)
	if err != nil {
		return ServerState{}, err
	}
	var cols []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "#" {
			cols = f[1:]
			continue
		}
		if cols == nil || len(f) != len(cols) {
			continue
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = f[i]
		}
		if row["be_name"] != h.c.Backend || row["srv_name"] != h.c.Server {
			continue
		}
		op, err1 := strconv.Atoi(row["srv_op_state"])
		adm, err2 := strconv.Atoi(row["srv_admin_state"])
		if err := errors.Join(err1, err2); err != nil {
			return ServerState{}, fmt.Errorf("haproxy: reading show servers state: %w", err)
		}
		return ServerState{Op: op, Admin: adm}, nil
	}
	return ServerState{}, fmt.Errorf("haproxy: no server %s/%s in show servers state: %s", h.c.Backend, h.c.Server, strings.TrimSpace(out))
}

// sessions reads the server's current sessions (scur) from "show stat".
func (h *HAProxy) sessions(ctx context.Context) (int, error) {
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		return 0, err
	}
	var cols []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			cols = strings.Split(rest, ",")
			continue
		}
		f := strings.Split(line, ",")
		if cols == nil || len(f) < len(cols) || f[0] != h.c.Backend || f[1] != h.c.Server {
			continue
		}
		for i, c := range cols {
			if c == "scur" {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, fmt.Errorf("haproxy: no server %s/%s in show stat", h.c.Backend, h.c.Server)
}

// Command sends one runtime API command and returns HAProxy's answer.
func (h *HAProxy) Command(ctx context.Context, cmd string) (string, error) {
	network, addr := "unix", h.c.Socket
	if !strings.HasPrefix(addr, "/") {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime api: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy runtime api: %s: %w", cmd, err)
	}
	// Without "prompt", HAProxy answers one command and closes.
	b, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("haproxy runtime api: %s: %w", cmd, err)
	}
	return string(b), nil
}
