// Package standin is a VMI stand-in for tests and demos: a small controller
// that plays KubeVirt's virt-controller and virt-handler against a real API
// server (see package kubeenv), without virtualisation.
//
// It watches the VirtualMachineInstances of one namespace and drives every
// new VMI the way KubeVirt reports a booting VM:
//
//	Pending -> Scheduling -> Scheduled (status.nodeName) -> Running
//
// with status.interfaces[0].ipAddress set to a loopback address of its own
// (127.x.y.z, unique while the VMI exists), the conditions PodScheduled=True
// and Ready=True, and guestOSInfo describing the host. The VMI CRD has no
// status subresource, so status is written with a plain update of the whole
// object, as virt-controller does.
//
// Before it reports Running, the stand-in does what the guest's cloud-init
// would do with the first-boot data: it reads the Secret named by the VMI's
// cloudInitNoCloud (or cloudInitConfigDrive) volume (key "userdata", or the
// inline userData), parses the #cloud-config document and starts a real
// OpenSSH sshd (package sshd) on <ip>:22 that serves the host key from
// ssh_keys.ed25519_private and accepts the keys of
// users[0].ssh_authorized_keys for the login users[0].name. That login must
// be an account of the host, otherwise the VMI fails with a reason that
// says so. Commands run over SSH therefore run on the host, as that user.
// [CreateAccount] makes a throwaway account for it (the Linux OS plugin
// refuses "root", so tests running as root cannot log in as themselves),
// whose shell also answers `cloud-init status` like a guest whose first boot
// is done.
//
// Like KubeVirt, the stand-in puts a finalizer on each VMI it drives. When a
// VMI is deleted it powers the "guest" off: it stops the VMI's sshd and
// kills every process its sessions started, including those left running
// in the background (found by the SSH_CONNECTION they inherited), releases
// the address and removes the finalizer, so the VMI disappears only after
// its guest is gone. All guests share the host's /tmp and the login's
// home; for logins listed in [Options.Accounts] the last guest's power-off
// also resets the account ([Account.Reset]), so jobs run one after another
// each find a fresh "VM".
//
// Tests choose a [Behaviour] per VMI with [Options.Behaviour]: fail
// ([Fail]), stay unschedulable ([Unschedulable]), run late ([DelayRunning]),
// boot sshd late ([DelaySSH]), or run without an address ([NoIP]). Fault
// tests reach a VMI's sshd with [Controller.SSHD] to Kill or Pause it.
//
// With [Options.Mode] = [ModeQEMU] the stand-in boots a real guest for
// each VMI instead (see [QEMUOptions]): an [ImageMap] resolves the VMI's
// containerDisk image to a microvm/ image (built and cached on first use),
// the seed is built from the VMI's cloud-init volume like virt-launcher
// builds it (NoCloud or ConfigDrive; meta-data instance-id = the VMI's
// UID, local-hostname = its name), QEMU runs with the VMI's vCPUs and
// memory and forwards <ip>:22 to the guest. The VMI is Running with its
// address once QEMU runs, before the guest OS is up, as in KubeVirt; a
// guest that does not answer SSH within QEMUOptions.BootTimeout fails the
// VMI with its console's tail in status.reason. Guests get QEMU's user
// network with restrict=on: they reach nothing outside (no DNS, no
// package mirrors, no Git server); jobs see only what the seed and the
// image bring.
//
// Watch expiry and API server restarts are handled by client-go's informer
// (list, then watch, re-list on "resource version too old").
//
// Use:
//
//	c, err := standin.Start(ctx, standin.Options{Config: env.AdminConfig(), Namespace: ns})
//	if err != nil { ... }
//	defer c.Stop()
package standin
