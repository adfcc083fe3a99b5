#!/usr/bin/python
# Copyright: kubeferry developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Imports follow the documentation, as ansible-test's validate-modules requires.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tls_material
short_description: Make a CA for one run and a server and a client certificate signed by it
version_added: 0.1.0
author:
  - kubeferry developers (@kubeferry)
description:
  - Generates, in memory, a certificate authority made for this run only (C(basicConstraints
    CA:TRUE), C(keyCertSign)), a server certificate (SAN C(DNS:<server_name>), extended key usage
    C(serverAuth)) and a client certificate (SAN C(DNS:<client_name>), C(clientAuth)) signed
    by it, for mutual TLS between the two sides of a transfer.
  - The CA's private key is never returned, so nothing else can be signed by this CA.
  - B(The returned keys are secrets.) Set C(no_log) to V(true) on the task and keep them only in
    Kubernetes Secrets; never in Pod specs, environment variables or logs.
  - Talks to no cluster and changes nothing (C(changed) is always false). Runs in
    check mode too, so that a C(--check) run can render the Secrets.
options:
  server_name:
    description: DNS name in the server certificate; the client checks it (stunnel C(checkHost)).
    type: str
    default: kubeferry-server
  client_name:
    description: DNS name in the client certificate.
    type: str
    default: kubeferry-client
  valid_days:
    description:
      - Days the certificates stay valid.
      - They start five minutes in the past, for clock skew between nodes.
    type: int
    default: 7
  key_type:
    description: V(ec) makes NIST P-256 keys, V(rsa) makes 3072-bit RSA keys.
    type: str
    choices: [ec, rsa]
    default: ec
requirements:
  - "python >= 3.9"
  - "cryptography"
"""

EXAMPLES = r"""
- name: Make the TLS material of this run
  kubeferry.state_transfer.tls_material:
    server_name: kubeferry-server
    client_name: kubeferry-client
    valid_days: 2
  register: __state_transfer_tls
  no_log: true
"""

RETURN = r"""
ca_cert:
  description: The run's CA certificate, PEM. Both sides trust only this CA.
  returned: success
  type: str
server_cert:
  description: The server certificate, PEM.
  returned: success
  type: str
server_key:
  description: The server's private key, PEM, unencrypted PKCS#8. A secret.
  returned: success
  type: str
client_cert:
  description: The client certificate, PEM.
  returned: success
  type: str
client_key:
  description: The client's private key, PEM, unencrypted PKCS#8. A secret.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kubeferry.state_transfer.plugins.module_utils import tls


def main():
    module = AnsibleModule(
        argument_spec=dict(
            server_name=dict(type="str", default="kubeferry-server"),
            client_name=dict(type="str", default="kubeferry-client"),
            valid_days=dict(type="int", default=7),
            key_type=dict(type="str", choices=["ec", "rsa"], default="ec"),
        ),
        supports_check_mode=True,
    )
    if not tls.HAS_CRYPTOGRAPHY:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=str(tls.CRYPTOGRAPHY_IMPORT_ERROR)
        )
    if module.params["valid_days"] < 1:
        module.fail_json(msg="valid_days must be at least 1")
    material = tls.generate(
        module.params["server_name"],
        module.params["client_name"],
        valid_days=module.params["valid_days"],
        key_type=module.params["key_type"],
    )
    module.exit_json(changed=False, **material)


if __name__ == "__main__":
    main()
