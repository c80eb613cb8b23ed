package kubeenv

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// grantTimeout bounds WaitGranted. The RBAC authorizer learns of a new
// Role or RoleBinding through its informers, normally within milliseconds.
const grantTimeout = 30 * time.Second

// WaitGranted waits until the API server grants the ServiceAccount
// namespace/serviceAccount every verb of rules (resource rules only) in
// namespace. The RBAC authorizer learns of new Roles and RoleBindings
// through informers, so a test that uses a fresh binding at once could
// otherwise be refused a verb its Role has. It asks as the admin, with
// SubjectAccessReviews, and fails after grantTimeout naming the verb.
func (e *Env) WaitGranted(ctx context.Context, namespace, serviceAccount string, rules []rbacv1.PolicyRule) error {
	client, err := kubernetes.NewForConfig(e.AdminConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	user := "system:serviceaccount:" + namespace + ":" + serviceAccount
	ctx, cancel := context.WithTimeout(ctx, grantTimeout)
	defer cancel()
	for _, r := range rules {
		if len(r.ResourceNames) > 0 {
			continue // a per-name rule cannot be asked about in general
		}
		for _, group := range r.APIGroups {
			for _, res := range r.Resources {
				for _, verb := range r.Verbs {
					attrs := &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Group: group, Resource: res}
					if err := waitAllowed(ctx, client, user, attrs); err != nil {
						return fmt.Errorf("wait until %s may %s %s in %s: %w", user, verb, res, namespace, err)
					}
				}
			}
		}
	}
	return nil
}

func waitAllowed(ctx context.Context, client kubernetes.Interface, user string, attrs *authorizationv1.ResourceAttributes) error {
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + attrs.Namespace, "system:authenticated"},
		ResourceAttributes: attrs,
	}}
	for {
		got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err == nil && got.Status.Allowed {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last answer: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("%w (last answer: not allowed, %q)", ctx.Err(), got.Status.Reason)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitManifestGranted waits, for every RoleBinding of objs that binds a
// Role of objs to ServiceAccounts, until those ServiceAccounts are granted
// the Role's rules (see [Env.WaitGranted]).
func (e *Env) waitManifestGranted(ctx context.Context, namespace string, objs []*unstructured.Unstructured) error {
	roles := map[string][]rbacv1.PolicyRule{}
	var bindings []rbacv1.RoleBinding
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Role":
			var role rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role); err != nil {
				return fmt.Errorf("role %s: %w", obj.GetName(), err)
			}
			roles[role.Name] = role.Rules
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &b); err != nil {
				return fmt.Errorf("role binding %s: %w", obj.GetName(), err)
			}
			bindings = append(bindings, b)
		}
	}
	for _, b := range bindings {
		rules, ok := roles[b.RoleRef.Name]
		if b.RoleRef.Kind != "Role" || !ok {
			continue
		}
		for _, s := range b.Subjects {
			if s.Kind != rbacv1.ServiceAccountKind || s.Namespace != namespace {
				continue
			}
			if err := e.WaitGranted(ctx, namespace, s.Name, rules); err != nil {
				return fmt.Errorf("role binding %s: %w", b.Name, err)
			}
		}
	}
	return nil
}
