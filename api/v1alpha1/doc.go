// Package v1alpha1 is graymesh's Kubernetes API, group graymesh.io: the
// GrayRelease, one release of the config file's releases[] per object. The
// CustomResourceDefinition in manifests/crd is generated from these
// types (make crd); its OpenAPI schema and CEL rules come from the markers
// below. No client-go here: the types are plain structs converted from the
// API server's JSON.
//
// +groupName=graymesh.io
// +versionName=v1alpha1
package v1alpha1

// Group, Version and Resource name the API.
const (
	Group    = "graymesh.io"
	Version  = "v1alpha1"
	Resource = "grayreleases"
	Kind     = "GrayRelease"
)
