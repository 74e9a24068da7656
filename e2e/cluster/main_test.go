// Package cluster runs the chart against Kubernetes: the chart on a bare API server, its
// `helm test` hook against the local system, and (TestCluster, `make test-cluster`, root
// only) a real single-node cluster with containerd, kubelet and Dapr's control plane.
package cluster

import (
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestMain(m *testing.M) { suite.Main(m, suite.Needs{Daprd: true}) }
