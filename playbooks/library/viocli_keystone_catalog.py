#!/usr/bin/python3
"""Ansible module: make Keystone's catalog, service project, roles and service users what viocli wants.

Runs on a controller with keystoneauth1 (Debian's python3-keystoneauth1) and talks to the Identity
API v3 directly: one process, one admin token, each kind of object listed once, and an exact ``changed``.
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
  internal_host: {description: host of the internal endpoints, type: str, required: true}
  internal_scheme: {description: scheme of the internal endpoints (https with internal TLS), type: str, default: http}
  public_host: {description: host of the public (https) endpoints, type: str, required: true}
  services: {description: "[{name, type, description, port, path}]", type: list, elements: dict, required: true}
  service_project: {description: project of the service users, type: str, default: service}
  service_users: {description: "{user: password}", type: dict, required: true, no_log: true}
  roles: {description: extra roles to create, type: list, elements: str, default: []}
  domain_admins: {description: "[{domain, user, password}]", type: list, elements: dict, default: []}
  ca_file: {description: CA the calls on auth_url verify against (default the system's trust store), type: str}
"""

from concurrent.futures import ThreadPoolExecutor  # noqa: E402 (after the documentation)

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
        # With internal TLS auth_url is the internal VIP's https: verify it against the deployment's CA.
        self.verify = self.params.get("ca_file") or True
        self.session = session.Session(auth=auth, verify=self.verify)
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
    # Each kind of object is listed once (not looked up one by one) and the service users' passwords are
    # checked concurrently: a no-op run is a dozen requests, most of its time Keystone's password hashing.
    def ensure_services(self) -> None:
        """Every service and its public and internal endpoints in the region."""
        region = self.params["region"]
        services = self._get("/services", "services")
        endpoints = self._get("/endpoints", "endpoints")
        for entry in self.params["services"]:
            found = [s for s in services if s["type"] == entry["type"]]
            if found:
                service = found[0]
            else:
                body = {"name": entry["name"], "type": entry["type"], "description": entry.get("description", "")}
                service = self._post("/services", "service", body)
                self.changes.append(f"created service {entry['name']}")
            urls = {
                "internal": (
                    f"{self.params['internal_scheme']}://{self.params['internal_host']}:{entry['port']}"
                    f"{entry.get('path', '')}"
                ),
                "public": f"https://{self.params['public_host']}:{entry['port']}{entry.get('path', '')}",
            }
            existing = [e for e in endpoints if e["service_id"] == service["id"]]
            for interface, url in urls.items():
                matches = [e for e in existing if e["interface"] == interface and e.get("region_id") == region]
                if not matches:
                    body = {"service_id": service["id"], "interface": interface, "url": url, "region_id": region}
                    self._post("/endpoints", "endpoint", body)
                    self.changes.append(f"created {interface} endpoint of {entry['name']}")
                elif matches[0]["url"] != url:
                    self._patch(f"/endpoints/{matches[0]['id']}", "endpoint", {"url": url})
                    self.changes.append(f"changed {interface} endpoint of {entry['name']}")

    def ensure_roles(self, names: list[str]) -> dict[str, dict]:
        """The roles ``names`` by name, each created if missing."""
        roles = {role["name"]: role for role in self._get("/roles", "roles")}
        for name in names:
            if name not in roles:
                self.changes.append(f"created role {name}")
                roles[name] = self._post("/roles", "role", {"name": name})
        return roles

    def ensure_users(self, wanted: list[tuple[str, str, str, dict | None]]) -> dict[str, dict]:
        """The users (name, password, domain id, default project) by name: created if missing, their
        password reset where it no longer authenticates (checked concurrently)."""
        listed: dict[str, dict[str, dict]] = {}
        users: dict[str, dict] = {}
        to_check: list[tuple[dict, str]] = []
        for name, password, domain_id, project in wanted:
            if domain_id not in listed:
                listed[domain_id] = {u["name"]: u for u in self._get("/users", "users", domain_id=domain_id)}
            user = listed[domain_id].get(name)
            if user is None:
                body = {"name": name, "password": password, "domain_id": domain_id, "enabled": True}
                if project:
                    body["default_project_id"] = project["id"]
                self.changes.append(f"created user {name}")
                user = self._post("/users", "user", body)
            else:
                to_check.append((user, password))
            users[name] = user
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(to_check)))) as pool:
            results = list(pool.map(lambda pair: self._authenticates(pair[0]["id"], pair[1]), to_check))
        for (user, password), authenticates in zip(to_check, results, strict=True):
            if not authenticates:
                self._patch(f"/users/{user['id']}", "user", {"password": password, "enabled": True})
                self.changes.append(f"reset the password of {user['name']}")
        return users

    def grant(self, target: str, target_id: str, users: list[dict], role: dict) -> None:
        """Give each of ``users`` the ``role`` on a project or domain (``target``: projects or domains)."""
        scope = "project" if target == "projects" else "domain"
        query = {f"scope.{scope}.id": target_id, "role.id": role["id"]}
        holders = {a["user"]["id"] for a in self._get("/role_assignments", "role_assignments", **query) if "user" in a}
        for user in users:
            if user["id"] in holders:
                continue
            self.session.put(f"{self.params['auth_url']}/{target}/{target_id}/users/{user['id']}/roles/{role['id']}")
            self.changes.append(f"granted {role['name']} to {user['name']} on {target[:-1]}")

    def _authenticates(self, user_id: str, password: str) -> bool:
        from keystoneauth1 import exceptions, session
        from keystoneauth1.identity import v3

        auth = v3.Password(auth_url=self.params["auth_url"], user_id=user_id, password=password, unscoped=True)
        try:
            session.Session(auth=auth, verify=self.verify).get_token()
        except exceptions.Unauthorized:
            return False
        return True

    def apply(self) -> None:
        """Bring Keystone to the desired state."""
        self.ensure_services()
        roles = self.ensure_roles(["admin", *self.params["roles"]])
        project = self._one(
            "/projects",
            "projects",
            {"name": self.params["service_project"], "domain_id": DEFAULT_DOMAIN, "description": "Service users"},
            name=self.params["service_project"],
            domain_id=DEFAULT_DOMAIN,
        )
        domains = {
            entry["domain"]: self._one(
                "/domains", "domains", {"name": entry["domain"], "description": "Owned by viocli"}, name=entry["domain"]
            )
            for entry in self.params["domain_admins"]
        }
        service_users = sorted(self.params["service_users"].items())
        users = self.ensure_users(
            [(name, password, DEFAULT_DOMAIN, project) for name, password in service_users]
            + [(e["user"], e["password"], domains[e["domain"]]["id"], None) for e in self.params["domain_admins"]]
        )
        self.grant("projects", project["id"], [users[name] for name, _ in service_users], roles["admin"])
        for entry in self.params["domain_admins"]:
            self.grant("domains", domains[entry["domain"]]["id"], [users[entry["user"]]], roles["admin"])


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
            "internal_scheme": {"type": "str", "default": "http", "choices": ["http", "https"]},
            "public_host": {"type": "str", "required": True},
            "services": {"type": "list", "elements": "dict", "required": True},
            "service_project": {"type": "str", "default": "service"},
            "service_users": {"type": "dict", "required": True, "no_log": True},
            "roles": {"type": "list", "elements": "str", "default": []},
            "domain_admins": {"type": "list", "elements": "dict", "default": [], "no_log": True},
            "ca_file": {"type": "str"},
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
