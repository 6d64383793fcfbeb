//go:build !linux

package local

import "log/slog"

// Cleanup does nothing outside Linux, where the backend runs no steps.
func Cleanup(dir string, logger *slog.Logger) error { return nil }
