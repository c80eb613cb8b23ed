// Command crdgen writes the KubeVirt VirtualMachineInstance and
// VirtualMachine CustomResourceDefinitions, with KubeVirt's full OpenAPI
// validation, into test/kubeenv/crds.
//
// kubevirt.io/api ships no CRD manifests, and the package that builds them
// (kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components)
// cannot be imported here: its dependency graph reaches modules the proxy
// refuses. The schemas themselves are plain data in that package's
// validations_generated.go (a map of CRD singular name to schema YAML), so
// crdgen downloads the kubevirt.io/kubevirt module, parses that file with
// go/parser, and assembles CRDs the way KubeVirt's components.New*Crd do
// (names, short names, categories, versions, printer columns, subresources).
//
// Usage, from anywhere inside the repository:
//
//	go run ./test/kubeenv/internal/crdgen [-kubevirt v1.9.0] [-out dir]
//
// Regenerate after bumping kubevirt.io/api in go.mod and commit the result.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	// modulePath is the module that holds the generated validation schemas.
	modulePath = "kubevirt.io/kubevirt"
	// validationsFile is the file inside modulePath with the schema map.
	validationsFile = "pkg/virt-operator/resource/generate/components/validations_generated.go"
	// validationsVar is the map variable in validationsFile.
	validationsVar = "CRDsValidation"
	// defaultKubeVirtVersion must match kubevirt.io/api in go.mod.
	defaultKubeVirtVersion = "v1.9.0"
	// ownModule is this repository's module path, used to find its root.
	ownModule = "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt"
)

func main() {
	version := flag.String("kubevirt", defaultKubeVirtVersion, "kubevirt.io/kubevirt module version to read the schemas from")
	out := flag.String("out", "", "output directory (default <repo>/test/kubeenv/crds)")
	flag.Parse()

	if err := run(context.Background(), *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, version, out string) error {
	if out == "" {
		root, err := repoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, "test", "kubeenv", "crds")
	}

	dir, err := moduleDir(ctx, modulePath, version)
	if err != nil {
		return err
	}
	src := filepath.Join(dir, filepath.FromSlash(validationsFile))
	schemas, err := readValidations(src)
	if err != nil {
		return err
	}

	crds := []*extv1.CustomResourceDefinition{
		virtualMachineInstanceCRD(),
		virtualMachineCRD(),
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	for _, crd := range crds {
		if err := setSchema(crd, schemas); err != nil {
			return err
		}
		data, err := render(crd, modulePath+"@"+version)
		if err != nil {
			return err
		}
		path := filepath.Join(out, crd.Name+".yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintf(os.Stderr, "crdgen: wrote %s (%d bytes)\n", path, len(data))
	}
	return nil
}

// repoRoot walks up from the working directory to this module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+ownModule)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the " + ownModule + " repository; pass -out")
		}
		dir = parent
	}
}

// moduleDir downloads path@version into the module cache and returns its
// directory. It runs outside any module so go.mod and go.sum stay untouched.
func moduleDir(ctx context.Context, path, version string) (string, error) {
	tmp, err := os.MkdirTemp("", "crdgen-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	var info struct {
		Dir   string
		Error string
	}
	if jerr := json.Unmarshal(stdout, &info); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s %s", path, version, err, info.Error, strings.TrimSpace(stderr.String()))
	}
	return info.Dir, nil
}

// readValidations parses file and returns the string map literal assigned to
// validationsVar, without compiling or importing the package.
func readValidations(file string) (map[string]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name != validationsVar || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.CompositeLit)
				if !ok {
					return nil, fmt.Errorf("%s: %s is not a composite literal", file, validationsVar)
				}
				return mapLiteral(fset, lit)
			}
		}
	}
	return nil, fmt.Errorf("%s: no var %s", file, validationsVar)
}

func mapLiteral(fset *token.FileSet, lit *ast.CompositeLit) (map[string]string, error) {
	m := make(map[string]string, len(lit.Elts))
	for _, elt := range lit.Elts {
		kv, ok := elt.(*ast.KeyValueExpr)
		if !ok {
			return nil, fmt.Errorf("%s: not a key: value element", fset.Position(elt.Pos()))
		}
		k, err := stringConst(kv.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: key: %w", fset.Position(kv.Key.Pos()), err)
		}
		v, err := stringConst(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: value of %q: %w", fset.Position(kv.Value.Pos()), k, err)
		}
		m[k] = v
	}
	return m, nil
}

// stringConst evaluates a constant string expression: literals, parentheses
// and concatenation (generated code splices backquotes in with "`").
func stringConst(e ast.Expr) (string, error) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", fmt.Errorf("literal of kind %s, want string", e.Kind)
		}
		return strconv.Unquote(e.Value)
	case *ast.ParenExpr:
		return stringConst(e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", fmt.Errorf("operator %s in string expression", e.Op)
		}
		x, err := stringConst(e.X)
		if err != nil {
			return "", err
		}
		y, err := stringConst(e.Y)
		if err != nil {
			return "", err
		}
		return x + y, nil
	default:
		return "", fmt.Errorf("unsupported expression %T", e)
	}
}

// setSchema sets the schema KubeVirt keys by the CRD's singular name on every
// version, as components.patchValidationForAllVersions does.
func setSchema(crd *extv1.CustomResourceDefinition, schemas map[string]string) error {
	raw, ok := schemas[crd.Spec.Names.Singular]
	if !ok {
		return fmt.Errorf("no schema for %s in %s", crd.Spec.Names.Singular, validationsFile)
	}
	for i := range crd.Spec.Versions {
		var v extv1.CustomResourceValidation
		if err := yaml.UnmarshalStrict([]byte(raw), &v); err != nil {
			return fmt.Errorf("decode schema of %s: %w", crd.Name, err)
		}
		if v.OpenAPIV3Schema == nil {
			return fmt.Errorf("schema of %s has no openAPIV3Schema", crd.Name)
		}
		crd.Spec.Versions[i].Schema = &v
	}
	return nil
}

// render marshals crd to YAML without the empty status and creationTimestamp
// the typed object would carry.
func render(crd *extv1.CustomResourceDefinition, source string) ([]byte, error) {
	js, err := json.Marshal(crd)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", crd.Name, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", crd.Name, err)
	}
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	body, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("yaml %s: %w", crd.Name, err)
	}
	header := fmt.Sprintf("# Code generated by test/kubeenv/internal/crdgen from %s; DO NOT EDIT.\n", source)
	return append([]byte(header), body...), nil
}

// newCRD mirrors components.newBlankCrd and newCRDVersions.
func newCRD(name string) *extv1.CustomResourceDefinition {
	versions := make([]extv1.CustomResourceDefinitionVersion, len(virtv1.ApiSupportedVersions))
	for i, v := range virtv1.ApiSupportedVersions {
		versions[i] = *v.DeepCopy()
	}
	return &extv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{virtv1.AppLabel: ""},
		},
		Spec: extv1.CustomResourceDefinitionSpec{
			Group:    virtv1.GroupVersion.Group,
			Versions: versions,
			Scope:    extv1.NamespaceScoped,
		},
	}
}

// virtualMachineInstanceCRD mirrors components.NewVirtualMachineInstanceCrd:
// note that the VMI has no status subresource.
func virtualMachineInstanceCRD() *extv1.CustomResourceDefinition {
	crd := newCRD("virtualmachineinstances." + virtv1.GroupVersion.Group)
	crd.Spec.Names = extv1.CustomResourceDefinitionNames{
		Plural:     "virtualmachineinstances",
		Singular:   "virtualmachineinstance",
		Kind:       virtv1.VirtualMachineInstanceGroupVersionKind.Kind,
		ShortNames: []string{"vmi", "vmis"},
		Categories: []string{"all"},
	}
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].AdditionalPrinterColumns = []extv1.CustomResourceColumnDefinition{
			{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
			{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
			{Name: "IP", Type: "string", JSONPath: ".status.interfaces[0].ipAddress"},
			{Name: "NodeName", Type: "string", JSONPath: ".status.nodeName"},
			{Name: "Ready", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].status"},
			{Name: "Live-Migratable", Type: "string", JSONPath: ".status.conditions[?(@.type=='LiveMigratable')].status", Priority: 1},
			{Name: "Paused", Type: "string", JSONPath: ".status.conditions[?(@.type=='Paused')].status", Priority: 1},
		}
	}
	return crd
}

// virtualMachineCRD mirrors components.NewVirtualMachineCrd.
func virtualMachineCRD() *extv1.CustomResourceDefinition {
	crd := newCRD("virtualmachines." + virtv1.GroupVersion.Group)
	crd.Spec.Names = extv1.CustomResourceDefinitionNames{
		Plural:     "virtualmachines",
		Singular:   "virtualmachine",
		Kind:       virtv1.VirtualMachineGroupVersionKind.Kind,
		ShortNames: []string{"vm", "vms"},
		Categories: []string{"all"},
	}
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].AdditionalPrinterColumns = []extv1.CustomResourceColumnDefinition{
			{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
			{Name: "Status", Description: "Human Readable Status", Type: "string", JSONPath: ".status.printableStatus"},
			{Name: "Ready", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].status"},
		}
		crd.Spec.Versions[i].Subresources = &extv1.CustomResourceSubresources{
			Status: &extv1.CustomResourceSubresourceStatus{},
		}
	}
	return crd
}
