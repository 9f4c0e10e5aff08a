package kube

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/graymesh/graymesh/api/v1alpha1"
)

// GVR is the GrayRelease resource.
var GVR = schema.GroupVersionResource{Group: v1alpha1.Group, Version: v1alpha1.Version, Resource: v1alpha1.Resource}

// Client is a dynamic client for GrayRelease objects in one namespace.
type Client struct {
	Dynamic   dynamic.Interface
	Namespace string
	// Config is the connection, for clients of other resources (leases).
	Config *rest.Config
	// dialFailed is told of every connection to the API server that
	// could not be made: the reflector retries those silently, so this
	// is how a broken watch is noticed.
	dialFailed atomic.Pointer[func(error)]
}

// Connect reads the connection as kubectl does: kubeconfig, or $KUBECONFIG
// and ~/.kube/config when empty, or the pod's service account inside a
// cluster. namespace "" takes the kubeconfig context's namespace (the
// pod's own inside a cluster).
func Connect(kubeconfig, namespace string) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes connection: %w", err)
	}
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("kubernetes namespace: %w", err)
		}
	}
	cfg.UserAgent = "graymesh"
	c := &Client{Namespace: namespace, Config: cfg}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			if f := c.dialFailed.Load(); f != nil {
				(*f)(err)
			}
		}
		return conn, err
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Resource is the GrayRelease resource of the client's namespace.
func (c *Client) Resource() dynamic.ResourceInterface {
	return c.Dynamic.Resource(GVR).Namespace(c.Namespace)
}
