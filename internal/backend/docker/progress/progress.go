// Package progress reads the Docker Engine's progress streams: the JSON
// messages that image pulls, loads and imports answer with. It is a leaf
// package, shared by the docker backend and the test image builder.
package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Read drains an Engine progress stream and returns the first error the
// stream reports, or an error when the stream is not JSON.
func Read(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading progress: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}
