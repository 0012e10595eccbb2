"""CERNSpawner: KubeSpawner with the seed's profiles, and pods that pass Pod Security "restricted"."""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import Unicode, default

from .seed_profiles import DEFAULT_NODE_GROUP_LABEL, SEED_PROFILES, to_profile_list

# The uid/gid of the Jupyter Docker Stacks user (jovyan, group users): images run as them out of the box.
NB_UID = 1000
NB_GID = 100


class CERNSpawner(KubeSpawner):
    """Spawn single-user servers on a Magnum cluster: one profile per node group, restricted pods."""

    node_group_label = Unicode(
        DEFAULT_NODE_GROUP_LABEL,
        config=True,
        help="""
        Node label whose value names the node group a node belongs to; profiles select their node group
        through it (node selector). The default is what Magnum's Heat driver (CERN) sets; Cluster API
        drivers use e.g. node.cluster.x-k8s.io/nodegroup or capi.stackhpc.com/node-group.
        """,
    )

    @default("profile_list")
    def _default_profile_list(self):
        return to_profile_list(SEED_PROFILES, node_group_label=self.node_group_label)

    # Pod Security Admission "restricted": non-root, no privilege escalation, no capabilities,
    # RuntimeDefault seccomp. KubeSpawner writes uid/gid into the container's securityContext only and
    # fs_gid into the pod's; the dicts below are merged over those (and win on conflicts).

    @default("cmd")
    def _default_cmd(self):
        # As Zero to JupyterHub does: start the single-user server explicitly rather than relying on
        # each image's CMD (the sandbox has no images, only commands).
        return ["jupyterhub-singleuser"]

    @default("uid")
    def _default_uid(self):
        return NB_UID

    @default("gid")
    def _default_gid(self):
        return NB_GID

    @default("fs_gid")
    def _default_fs_gid(self):
        # Volumes become writable by the notebook user's group.
        return NB_GID

    @default("container_security_context")
    def _default_container_security_context(self):
        return {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }

    @default("pod_security_context")
    def _default_pod_security_context(self):
        # Also covers init and sidecar containers, which do not get container_security_context.
        return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}

    @default("automount_service_account_token")
    def _default_automount_service_account_token(self):
        # KubeSpawner mounts the token whenever a service account is set; users need no API access.
        return False
