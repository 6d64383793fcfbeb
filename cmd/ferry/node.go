package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	ucli "github.com/urfave/cli/v3"

	"github.com/ferryci/ferry/internal/artifact"
	_ "github.com/ferryci/ferry/internal/artifact/s3" // the s3:// store
	"github.com/ferryci/ferry/internal/cli"
	"github.com/ferryci/ferry/internal/node"
)

func nodeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "node",
		Usage: "run the host agent on a deploy target: install, switch, health-check and report releases",
		Description: "ferry node reads its YAML configuration (docs/configuration.md, \"ferry node\"). With a server: section\n" +
			"it follows the desired state the server sets; without one, each service watches an artifact URL\n" +
			"by checksum (standalone mode, like Dropship).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "config", Value: "/etc/ferry/node.yml", Usage: "the node's configuration `FILE`", Sources: ucli.EnvVars("FERRY_NODE_CONFIG")},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", Sources: ucli.EnvVars("FERRY_LOG_LEVEL")},
			&ucli.BoolFlag{Name: "check", Usage: "validate the configuration and exit"},
		},
		Commands: []*ucli.Command{nodeListCommand()},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("node takes no arguments, got %q", c.Args().Slice())
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg, err := node.LoadConfig(c.String("config"))
			if err != nil {
				return err
			}
			if c.Bool("check") {
				fmt.Printf("%s: ok\n", c.String("config"))
				return nil
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			n, err := node.New(cfg, cli.Version, logger)
			if err != nil {
				return err
			}
			return n.Run(ctx)
		},
	}
}

func artifactCommand() *ucli.Command {
	s3Flags := []ucli.Flag{
		&ucli.StringFlag{Name: "s3-endpoint", Usage: "`HOST[:PORT]` of the S3 API (default s3.amazonaws.com)", Sources: ucli.EnvVars("FERRY_S3_ENDPOINT")},
		&ucli.StringFlag{Name: "s3-region", Usage: "`REGION` of the bucket (default us-east-1)", Sources: ucli.EnvVars("FERRY_S3_REGION")},
		&ucli.StringFlag{Name: "s3-access-key", Usage: "S3 access key `ID`", Sources: ucli.EnvVars("FERRY_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")},
		&ucli.StringFlag{Name: "s3-secret-key-file", Usage: "`FILE` holding the S3 secret key (or FERRY_S3_SECRET_KEY)", Sources: ucli.EnvVars("FERRY_S3_SECRET_KEY_FILE")},
		&ucli.BoolFlag{Name: "s3-insecure", Usage: "talk plain http to the S3 endpoint", Sources: ucli.EnvVars("FERRY_S3_INSECURE")},
	}
	return &ucli.Command{
		Name:  "artifact",
		Usage: "publish release artifacts",
		Commands: []*ucli.Command{{
			Name:      "push",
			Usage:     "upload a file to an artifact store and print its URL and sha256",
			ArgsUsage: "FILE",
			Description: "--store is a URL (s3://bucket/prefix/, file:///dir/, https://host/dir/); a URL ending in / gets the\n" +
				"file's name appended. A sidecar URL.sha256 is written after the artifact, for standalone nodes.",
			Flags: append([]ucli.Flag{
				&ucli.StringFlag{Name: "store", Required: true, Usage: "destination `URL`", Sources: ucli.EnvVars("FERRY_ARTIFACT_STORE")},
				&ucli.BoolFlag{Name: "no-sidecar", Usage: "do not write URL.sha256"},
				&ucli.BoolFlag{Name: "json", Usage: "print {url, sha256, size} as JSON"},
			}, append(s3Flags, artifactReleaseFlags()...)...),
			Action: func(ctx context.Context, c *ucli.Command) error {
				if c.Args().Len() != 1 {
					return fmt.Errorf("artifact push takes one FILE, got %d arguments", c.Args().Len())
				}
				secret := os.Getenv("FERRY_S3_SECRET_KEY")
				if f := c.String("s3-secret-key-file"); f != "" {
					b, err := os.ReadFile(f)
					if err != nil {
						return fmt.Errorf("--s3-secret-key-file: %w", err)
					}
					secret = string(trimSpace(b))
				}
				res, err := artifact.Push(ctx, c.Args().First(), c.String("store"), artifact.Options{S3: artifact.S3Options{
					Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"),
					AccessKey: c.String("s3-access-key"), SecretKey: secret, Insecure: c.Bool("s3-insecure"),
				}}, !c.Bool("no-sidecar"))
				if err != nil {
					return err
				}
				if c.String("release") != "" {
					return releaseAfterPush(ctx, c, res.URL, res.SHA256)
				}
				if c.Bool("json") {
					return json.NewEncoder(os.Stdout).Encode(res)
				}
				fmt.Printf("url: %s\nsha256: %s\nsize: %d\n", res.URL, res.SHA256, res.Size)
				return nil
			},
		}},
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
