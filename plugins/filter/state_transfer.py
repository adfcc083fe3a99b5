# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the state_transfer roles: names, the plan, preflight checks and the summary.

The logic lives in plugins/plugin_utils (unit-tested); templates and tasks only call it.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils import (
    checks,
    credentials,
    names,
    plan,
    pods,
    report,
)
from ansible_collections.kubeferry.state_transfer.plugins.plugin_utils.inputs import normalise


def k8s_name(parts, max_length=63):
    """['kubeferry-abc', 'server', 'rsync'] -> a DNS-1123 label <= max_length (hashed if cut)."""
    try:
        return names.k8s_name(parts, max_length)
    except ValueError as error:
        raise AnsibleFilterError("k8s_name: {0}".format(error)) from error


def state_transfer_inputs(given):
    """The role's variables as its tasks read them: strings from AWX surveys or -e converted
    ("5" -> 5, "true" -> true, "data, logs:copy" -> PVC pairs), flat side variables merged.
    Problems are reported by state_transfer_input_errors, which takes the same dict."""
    return normalise(given)[0]


def state_transfer_plan(inputs):
    """The names, labels and PVC pairs of a run from the role's inputs (a dict)."""
    return plan.build_plan(
        inputs["state_transfer_source"],
        inputs["state_transfer_destination"],
        inputs["state_transfer_pvcs"],
        run_id=inputs.get("state_transfer_run_id") or "",
        mode=inputs.get("state_transfer_mode") or "preserve",
        run_as_user=inputs.get("state_transfer_run_as_user"),
    )


class FilterModule(object):
    def filters(self):
        return {
            "k8s_name": k8s_name,
            "label_value": names.label_value,
            "state_transfer_inputs": state_transfer_inputs,
            "state_transfer_plan": state_transfer_plan,
            "state_transfer_plan_summary": plan.plan_summary,
            "state_transfer_input_errors": checks.input_errors,
            "state_transfer_preflight": checks.cluster_preflight,
            "state_transfer_summary_table": report.summary_table,
            "state_transfer_explain_failure": report.explain_failure,
            "state_transfer_pvc_volumes": pods.pvc_volumes,
            "state_transfer_add_mount": pods.add_mount,
            "state_transfer_redact_secrets": pods.redact_secrets,
            "state_transfer_progress_pods": pods.progress_pods,
            "htpasswd_sha1": credentials.htpasswd_sha1,
        }
