package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// A sink fenced by its own -instance-id (a coordinator failover) joins
// again; fenced again and again, it stops, as another replica most likely
// has its id. Any other error stops it at once.
func TestRunRejoiningAfterAFencing(t *testing.T) {
	fenced := fmt.Errorf("another sink joined: %w", kafka.NewError(kafka.ErrFencedInstanceID, "fenced", true))
	runs := 0
	err := runRejoining(context.Background(), Config{InstanceID: "sink-a"}, zaptest.NewLogger(t),
		func(context.Context, Config, *zap.Logger) error {
			runs++
			if runs == 2 {
				return nil // ran on and stopped cleanly
			}
			return fenced
		})
	require.NoError(t, err)
	require.Equal(t, 2, runs, "joined again once")

	runs = 0
	err = runRejoining(context.Background(), Config{}, zaptest.NewLogger(t), func(context.Context, Config, *zap.Logger) error {
		runs++
		return fenced
	})
	require.ErrorContains(t, err, "fenced 3 times within 10m0s")
	require.Equal(t, fencings, runs)

	runs = 0
	other := errors.New("database gone")
	err = runRejoining(context.Background(), Config{}, zaptest.NewLogger(t), func(context.Context, Config, *zap.Logger) error {
		runs++
		return other
	})
	require.ErrorIs(t, err, other)
	require.Equal(t, 1, runs)
}
