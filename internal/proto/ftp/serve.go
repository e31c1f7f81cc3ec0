package ftp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveApp is FTP (RFC 959, 4217) inside TLS with an empty root directory:
// login, PBSZ/PROT, PWD, TYPE, passive data connections (EPSV/PASV) for
// LIST/NLST, protected with TLS when PROT P was asked.
func serveApp(ctx context.Context, s registry.ServeConn) {
	if s.Implicit() && s.Write("220 "+s.Hostname()+" FTP ready") != nil {
		return
	}
	var user string
	authed, protect, pbsz := false, false, false
	var data net.Listener
	defer func() {
		if data != nil {
			data.Close()
		}
	}()
	registry.Dialogue(ctx, s, func(line string) ([]string, bool) {
		var err error
		verb, arg, _ := strings.Cut(line, " ")
		var reply string
		switch v := strings.ToUpper(verb); {
		case v == "FEAT":
			return []string{"211-Features:", " PBSZ", " PROT", " EPSV", " PASV", " UTF8", "211 End"}, false
		case v == "QUIT":
			return []string{"221 Goodbye"}, true
		case v == "AUTH":
			reply = "503 TLS already active"
		case v == "PBSZ":
			pbsz, reply = true, "200 PBSZ=0"
		case v == "PROT" && !pbsz:
			reply = "503 PBSZ first" // RFC 4217 §9
		case v == "PROT":
			switch strings.ToUpper(arg) {
			case "P":
				protect, reply = true, "200 Protection level set to Private"
			case "C":
				protect, reply = false, "200 Protection level set to Clear"
			default:
				reply = "536 Protection level not supported"
			}
		case v == "NOOP":
			reply = "200 OK"
		case v == "SYST":
			reply = "215 UNIX Type: L8"
		case v == "USER":
			user, reply = arg, "331 Password required"
		case v == "PASS":
			if user != "" && s.CheckUser(user, arg) {
				authed, reply = true, "230 Logged in"
			} else {
				reply = "530 Login incorrect"
			}
		case !authed:
			reply = "530 Please log in with USER and PASS"
		case v == "PWD":
			reply = `257 "/" is the current directory`
		case v == "CWD":
			if arg == "/" || arg == "" {
				reply = "250 OK"
			} else {
				reply = "550 No such directory"
			}
		case v == "TYPE":
			reply = "200 Type set"
		case v == "EPSV" || v == "PASV":
			if data != nil {
				data.Close()
			}
			if data, err = net.Listen("tcp", net.JoinHostPort(serveLocalIP(s), "0")); err != nil {
				reply = "425 Cannot open data connection"
				break
			}
			port := data.Addr().(*net.TCPAddr).Port
			if v == "EPSV" {
				reply = fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", port)
			} else {
				ip := data.Addr().(*net.TCPAddr).IP.To4()
				if ip == nil {
					reply = "425 PASV needs IPv4; use EPSV"
					break
				}
				reply = fmt.Sprintf("227 Entering Passive Mode (%d,%d,%d,%d,%d,%d)", ip[0], ip[1], ip[2], ip[3], port>>8, port&255)
			}
		case v == "LIST" || v == "NLST" || v == "MLSD":
			if data == nil {
				reply = "425 Use EPSV or PASV first"
				break
			}
			if s.Write("150 Here comes the (empty) listing") != nil {
				return nil, true
			}
			l := data
			data = nil
			if err := serveSendEmpty(s, l, protect); err != nil {
				reply = "425 Data connection failed: " + err.Error()
			} else {
				reply = "226 Transfer complete"
			}
		case v == "SIZE" || v == "RETR" || v == "MDTM":
			reply = "550 No such file"
		case v == "STOR" || v == "DELE" || v == "MKD":
			reply = "550 Read-only server"
		default:
			reply = "502 Command not implemented"
		}
		return []string{reply}, false
	})
}

// serveSendEmpty accepts one data connection on l, protects it like the control
// connection when asked, and closes it: an empty listing.
func serveSendEmpty(s registry.ServeConn, l net.Listener, protect bool) error {
	defer l.Close()
	if tl, ok := l.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(s.IdleTimeout()))
	}
	conn, err := l.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	if !protect || !s.Secure() {
		return nil
	}
	_ = conn.SetDeadline(time.Now().Add(s.IdleTimeout()))
	cfg := s.TLSConfig().Clone()
	tc := tls.Server(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	return tc.Close()
}

// serveLocalIP is the address the client reached us on, for data connections.
func serveLocalIP(s registry.ServeConn) string {
	if a, ok := s.Conn().LocalAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return "127.0.0.1"
}
