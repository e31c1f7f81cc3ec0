package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/serve"
)

func newServeCmd() *cobra.Command {
	var proto, listen, certFile, keyFile, policy, mailDir, hostname, xmppHost string
	var users []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "serve --proto PROTO [flags]",
		Short: "Run a working STARTTLS server (SMTP accepts mail, IMAP/POP3 serve an empty mailbox)",
		Long: `serve runs a server of the protocol: the plaintext dialogue and STARTTLS by the
library (the Required policy refuses authentication and mail before TLS), then a
small real application inside TLS. Without --cert it makes a throwaway CA and a
certificate for localhost, 127.0.0.1 and ::1, and prints the CA file to trust.`,
		Example: `  starttls serve --proto smtp --listen 127.0.0.1:2525 --maildir /tmp/mail
  starttls serve --proto imap --listen 127.0.0.1:1143 --user alice:secret
  starttls serve --proto pop3s --listen 127.0.0.1:1995 --cert cert.pem --key key.pem
  # an XMPP server for the domain example.test (its throwaway certificate names it too):
  starttls serve --proto xmpp --listen 127.0.0.1:5222 --xmpp-host example.test`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := starttls.Protocol(strings.ToLower(proto))
			if _, err := starttls.Lookup(p); err != nil || proto == "" {
				return exitWith(exitUsage, fmt.Errorf("--proto %q: want one of %s", proto, protocolList()))
			}
			o := serve.Options{Protocol: p, Listen: listen, MailDir: mailDir, Hostname: hostname}
			if xmppHost != "" {
				if !isXMPP(p) {
					return exitWith(exitUsage, fmt.Errorf("--xmpp-host is for xmpp and xmpp-server, not %s", p))
				}
				// The stream's domain: the server's 'from', and the only
				// 'to' it accepts (any other gets host-unknown).
				o.Hostname = xmppHost
			}
			switch policy {
			case "required":
			case "optional":
				o.Policy = starttls.Optional
			default:
				return exitWith(exitUsage, fmt.Errorf("--policy %q: want required or optional", policy))
			}
			if len(users) > 0 {
				o.Users = map[string]string{}
				for _, u := range users {
					name, pass, ok := strings.Cut(u, ":")
					if !ok {
						return exitWith(exitUsage, fmt.Errorf("--user %q: want NAME:PASSWORD", u))
					}
					o.Users[name] = pass
				}
			}
			stderr := cmd.ErrOrStderr()
			switch {
			case certFile != "" || keyFile != "":
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return exitWith(exitUsage, fmt.Errorf("--cert/--key: %w", err))
				}
				o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			default:
				dir, err := os.MkdirTemp("", "starttls-serve-")
				if err != nil {
					return exitWith(exitFindings, err)
				}
				var hosts []string
				if xmppHost != "" {
					// XMPP clients verify the certificate for the domain.
					hosts = []string{"localhost", "127.0.0.1", "::1", xmppHost}
				}
				cfg, caFile, err := serve.ThrowawayTLS(dir, hosts...)
				if err != nil {
					return exitWith(exitFindings, err)
				}
				o.TLSConfig = cfg
				fmt.Fprintf(stderr, "CA certificate: %s\n", caFile)
			}
			if verbose {
				o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
			}
			ctx, stop := commandContext(cmd)
			defer stop()
			addr, done, err := serve.Run(ctx, o)
			if err != nil {
				return exitWith(exitConnect, err)
			}
			mode := "STARTTLS " + policy
			if info, _ := starttls.Lookup(p); info.Implicit {
				mode = "implicit TLS"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "listening on %s (%s, %s)\n", addr, p, mode)
			if err := <-done; err != nil {
				return exitWith(exitFindings, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&proto, "proto", "", "protocol: "+protocolList())
	fl.StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	fl.StringVar(&certFile, "cert", "", "PEM certificate chain (default: a throwaway CA's)")
	fl.StringVar(&keyFile, "key", "", "PEM private key")
	fl.StringVar(&policy, "policy", "required", "required (nothing but the dialogue before TLS) or optional")
	fl.StringVar(&mailDir, "maildir", "", "store received mail here, one file per message")
	fl.StringVar(&hostname, "hostname", "localhost", "name in greetings")
	fl.StringVar(&xmppHost, "xmpp-host", "", "XMPP domain the stream answers for (xmpp, xmpp-server; default --hostname), also named in the throwaway certificate")
	fl.StringArrayVar(&users, "user", nil, "NAME:PASSWORD accepted for AUTH/LOGIN (repeatable; default: any)")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log sessions to stderr")
	return cmd
}

func init() { rootCmd.AddCommand(newServeCmd()) }
