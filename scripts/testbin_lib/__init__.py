"""scripts/testbin as a package: the real programs the tests run against, built from their Go modules.

Standard library only (system python3 runs it, no virtualenv). One module per concern:

  core          the Tool and CrdSource records, BuildError, the cache directory, the proxy's address
  goproxy       the module proxy protocol and go.mod: what is served, the derived replaces
  gobuild       building a tool (wrapper module, go build, C programs), its stamp, the CRDs, KUBEBUILDER_ASSETS
  check         --check: everything a build would fetch, asked of the proxy without building
  catalog       every tool and CRD source by name, with --pin applied
  cli           the command line (scripts/testbin's usage is its docstring)

and one module per family of tools, each with its pins:

  controlplane  etcd, kube-apiserver, kube-controller-manager
  node          the one-node cluster's parts: kubelet, kube-scheduler, kube-proxy, pause; containerd; runc; CNI
  identity      Dex, oauth2-proxy
  checkers      helm, promtool, actionlint: what checks the chart, the alerts and the release workflow
  crds          the CRDs copied out of Go modules (CloudNativePG, Barman Cloud, ACK S3, Gateway API, Traefik)
"""
