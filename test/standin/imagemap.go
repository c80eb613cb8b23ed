package standin

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
)

// ImageMap says which local guest image stands in for a containerDisk
// image in QEMU mode. A mapping file is YAML (or JSON):
//
//	images:
//	  - image: "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:*"
//	    guest: debian-bookworm        # a recipe in microvm/guests: built (cached) on first use
//	  - image: "registry.example.com/ci/custom:v1"
//	    dir: /var/cache/images/custom # an image directory microvm.LoadImage reads
//
// Patterns are path.Match globs ('*' does not cross '/'); the first
// matching entry wins.
type ImageMap struct {
	Images []ImageMapping `json:"images"`
}

// ImageMapping maps one image pattern to a guest recipe or an image
// directory (exactly one of Guest and Dir).
type ImageMapping struct {
	// Image is a path.Match pattern over the full image reference.
	Image string `json:"image"`
	// Guest is a recipe of microvm.Guests().
	Guest string `json:"guest,omitempty"`
	// Dir is a built image directory (absolute).
	Dir string `json:"dir,omitempty"`
}

// LoadImageMap reads and validates the mapping file at file.
func LoadImageMap(file string) (*ImageMap, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("image map: %w", err)
	}
	m, err := ParseImageMap(data)
	if err != nil {
		return nil, fmt.Errorf("image map %s: %w", file, err)
	}
	return m, nil
}

// ParseImageMap parses a mapping document (YAML or JSON; unknown keys are
// errors) and validates every entry.
func ParseImageMap(data []byte) (*ImageMap, error) {
	var m ImageMap
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks every entry; errors name the entry, the value and the
// rule.
func (m *ImageMap) Validate() error {
	if len(m.Images) == 0 {
		return errors.New("images: must list at least one image pattern")
	}
	var errs []error
	for i, e := range m.Images {
		field := func(name string) string { return fmt.Sprintf("images[%d].%s", i, name) }
		if e.Image == "" {
			errs = append(errs, fmt.Errorf("%s: is required (a path.Match pattern of containerDisk images)", field("image")))
		} else if _, err := path.Match(e.Image, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a path.Match pattern: %w", field("image"), e.Image, err))
		}
		switch {
		case e.Guest == "" && e.Dir == "":
			errs = append(errs, fmt.Errorf("images[%d]: needs guest (a recipe of %v) or dir (an image directory)", i, microvm.Guests()))
		case e.Guest != "" && e.Dir != "":
			errs = append(errs, fmt.Errorf("images[%d]: guest %q and dir %q: set only one", i, e.Guest, e.Dir))
		case e.Guest != "" && !slices.Contains(microvm.Guests(), e.Guest):
			errs = append(errs, fmt.Errorf("%s %q: must be one of %v", field("guest"), e.Guest, microvm.Guests()))
		case e.Dir != "" && !filepath.IsAbs(e.Dir):
			errs = append(errs, fmt.Errorf("%s %q: must be an absolute path", field("dir"), e.Dir))
		}
	}
	return errors.Join(errs...)
}

// Resolve returns the first entry whose pattern matches image.
func (m *ImageMap) Resolve(image string) (ImageMapping, error) {
	for _, e := range m.Images {
		if ok, _ := path.Match(e.Image, image); ok {
			return e, nil
		}
	}
	pats := make([]string, len(m.Images))
	for i, e := range m.Images {
		pats[i] = e.Image
	}
	return ImageMapping{}, fmt.Errorf("containerDisk image %q: matches no pattern of the image map %v", image, pats)
}
