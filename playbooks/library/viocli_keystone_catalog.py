#!/usr/bin/python3
"""Ansible module: make Keystone's catalog, service project, roles and service users what viocli wants.

Runs on a controller with keystoneauth1 (Debian's python3-keystoneauth1) and talks to the Identity
API v3 directly: one process, one admin token, a handful of requests, and an exact ``changed``.
Every password arrives as a module argument (never on a command line) and is marked no_log.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: viocli_keystone_catalog
short_description: Ensure Keystone services, endpoints, projects, roles and service users
description:
  - Creates what is missing and corrects what differs; never deletes anything.
  - A user's password is checked by authenticating as that user and reset only if that fails.
options:
  auth_url: {description: Identity v3 URL, type: str, required: true}
  admin_user: {description: admin user name, type: str, required: true}
  admin_project: {description: admin project name, type: str, required: true}
  admin_password: {description: admin password, type: str, required: true, no_log: true}
  region: {description: region of the endpoints, type: str, required: true}
  internal_host: {description: host of the internal (http) endpoints, type: str, required: true}
  public_host: {description: host of the public (https) endpoints, type: str, required: true}
  services: {description: "[{name, type, description, port, path}]", type: list, elements: dict, required: true}
  service_project: {description: project of the service users, type: str, default: service}
  service_users: {description: "{user: password}", type: dict, required: true, no_log: true}
  roles: {description: extra roles to create, type: list, elements: str, default: []}
  domain_admins: {description: "[{domain, user, password}]", type: list, elements: dict, default: []}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 (after the documentation, as Ansible modules go)

DEFAULT_DOMAIN = "default"


class Catalog:
    """Idempotent Identity v3 calls over one admin session; records what it changed."""

    def __init__(self, module: AnsibleModule) -> None:
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        self.module = module
        self.params = module.params
        auth = v3.Password(
            auth_url=self.params["auth_url"],
            username=self.params["admin_user"],
            password=self.params["admin_password"],
            project_name=self.params["admin_project"],
            user_domain_id=DEFAULT_DOMAIN,
            project_domain_id=DEFAULT_DOMAIN,
        )
        self.session = session.Session(auth=auth)
        self.changes: list[str] = []

    # --- REST helpers -------------------------------------------------------------------------------
    def _get(self, path: str, key: str, **query: str) -> list[dict]:
        response = self.session.get(self.params["auth_url"] + path, params=query)
        return response.json()[key]

    def _post(self, path: str, key: str, body: dict) -> dict:
        response = self.session.post(self.params["auth_url"] + path, json={key: body})
        return response.json()[key]

    def _patch(self, path: str, key: str, body: dict) -> None:
        self.session.patch(self.params["auth_url"] + path, json={key: body})

    def _one(self, path: str, key: str, body: dict, **query: str) -> dict:
        """The first object matching ``query``, created from ``body`` if there is none."""
        found = self._get(path, key, **query)
        if found:
            return found[0]
        self.changes.append(f"created {key[:-1]} {body.get('name', body)}")
        return self._post(path, key[:-1], body)

    # --- desired state ------------------------------------------------------------------------------
    def ensure_services(self) -> None:
        """Every service and its public and internal endpoints in the region."""
        region = self.params["region"]
        for entry in self.params["services"]:
            service = self._one(
                "/services",
                "services",
                {"name": entry["name"], "type": entry["type"], "description": entry.get("description", "")},
                type=entry["type"],
            )
            urls = {
                "internal": f"http://{self.params['internal_host']}:{entry['port']}{entry.get('path', '')}",
                "public": f"https://{self.params['public_host']}:{entry['port']}{entry.get('path', '')}",
            }
            existing = self._get("/endpoints", "endpoints", service_id=service["id"])
            for interface, url in urls.items():
                matches = [e for e in existing if e["interface"] == interface and e.get("region_id") == region]
                if not matches:
                    body = {"service_id": service["id"], "interface": interface, "url": url, "region_id": region}
                    self._post("/endpoints", "endpoint", body)
                    self.changes.append(f"created {interface} endpoint of {entry['name']}")
                elif matches[0]["url"] != url:
                    self._patch(f"/endpoints/{matches[0]['id']}", "endpoint", {"url": url})
                    self.changes.append(f"changed {interface} endpoint of {entry['name']}")

    def ensure_role(self, name: str) -> dict:
        """The role ``name``, created if missing."""
        return self._one("/roles", "roles", {"name": name}, name=name)

    def ensure_user(self, name: str, password: str, domain_id: str, project: dict | None) -> dict:
        """The user, created if missing, its password reset if it no longer authenticates."""
        found = self._get("/users", "users", name=name, domain_id=domain_id)
        if not found:
            body = {"name": name, "password": password, "domain_id": domain_id, "enabled": True}
            if project:
                body["default_project_id"] = project["id"]
            self.changes.append(f"created user {name}")
            return self._post("/users", "user", body)
        user = found[0]
        if not self._authenticates(user["id"], password):
            self._patch(f"/users/{user['id']}", "user", {"password": password, "enabled": True})
            self.changes.append(f"reset the password of {name}")
        return user

    def grant(self, target: str, target_id: str, user: dict, role: dict) -> None:
        """Give ``user`` the ``role`` on a project or domain (``target``: projects or domains)."""
        path = f"{self.params['auth_url']}/{target}/{target_id}/users/{user['id']}/roles/{role['id']}"
        if self.session.head(path, raise_exc=False).status_code == 204:
            return
        self.session.put(path)
        self.changes.append(f"granted {role['name']} to {user['name']} on {target[:-1]}")

    def _authenticates(self, user_id: str, password: str) -> bool:
        from keystoneauth1 import exceptions, session
        from keystoneauth1.identity import v3

        auth = v3.Password(auth_url=self.params["auth_url"], user_id=user_id, password=password, unscoped=True)
        try:
            session.Session(auth=auth).get_token()
        except exceptions.Unauthorized:
            return False
        return True

    def apply(self) -> None:
        """Bring Keystone to the desired state."""
        self.ensure_services()
        admin = self.ensure_role("admin")
        for role in self.params["roles"]:
            self.ensure_role(role)
        project = self._one(
            "/projects",
            "projects",
            {"name": self.params["service_project"], "domain_id": DEFAULT_DOMAIN, "description": "Service users"},
            name=self.params["service_project"],
            domain_id=DEFAULT_DOMAIN,
        )
        for name, password in sorted(self.params["service_users"].items()):
            user = self.ensure_user(name, password, DEFAULT_DOMAIN, project)
            self.grant("projects", project["id"], user, admin)
        for entry in self.params["domain_admins"]:
            domain = self._one(
                "/domains", "domains", {"name": entry["domain"], "description": "Owned by viocli"}, name=entry["domain"]
            )
            user = self.ensure_user(entry["user"], entry["password"], domain["id"], None)
            self.grant("domains", domain["id"], user, admin)


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(
        argument_spec={
            "auth_url": {"type": "str", "required": True},
            "admin_user": {"type": "str", "required": True},
            "admin_project": {"type": "str", "required": True},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "region": {"type": "str", "required": True},
            "internal_host": {"type": "str", "required": True},
            "public_host": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "dict", "required": True},
            "service_project": {"type": "str", "default": "service"},
            "service_users": {"type": "dict", "required": True, "no_log": True},
            "roles": {"type": "list", "elements": "str", "default": []},
            "domain_admins": {"type": "list", "elements": "dict", "default": [], "no_log": True},
        },
        supports_check_mode=False,
    )
    from keystoneauth1 import exceptions

    catalog = Catalog(module)
    try:
        catalog.apply()
    except exceptions.ClientException as error:
        module.fail_json(msg=f"Keystone at {module.params['auth_url']}: {error}", changes=catalog.changes)
    module.exit_json(changed=bool(catalog.changes), changes=catalog.changes)


if __name__ == "__main__":
    main()
