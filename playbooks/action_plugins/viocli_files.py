"""Action plugin: render every configuration file of a role on the OMS and keep them on a node in one call.

One ``template`` task costs a remote call per file (a stat, then a copy when it differs), so a role of
ten files paid ten round trips per node on every run. This renders them all here, exactly as the
``template`` action would (the role's templates directory, the task's variables, ``trim_blocks``), and
hands the whole set to the ``viocli_files`` module, which writes only the files whose bytes differ.

Task arguments: ``files``, a list of entries, each with ``dest`` and one of ``src`` (a template of the
role), ``content`` (text), ``local`` (a file on the OMS, copied as it is) or ``state: directory``; plus
``owner``, ``group``, ``mode``, ``vars`` (more variables for that template), ``validate`` (a command
run on the new file, ``%s`` its path, before it replaces the old one) and ``diff`` (false keeps the file
out of --diff output). The result has
``changed_paths``, and ``diff`` in diff mode.
"""

from __future__ import annotations

import base64
import os

from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

KINDS = ("src", "content", "local")
ENTRY_KEYS = {"dest", "owner", "group", "mode", "state", "diff", "vars", "validate", *KINDS}


class ActionModule(ActionBase):
    """Render on the OMS, compare and write on the node."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset({"files"})

    def _render(self, src: str, dest: str, task_vars: dict, extra: dict) -> str:
        try:
            source = self._find_needle("templates", src)
        except AnsibleError as error:
            raise AnsibleActionFail(f"template {src} (for {dest}) not found: {error}") from error
        template_data = trust_as_template(self._loader.get_text_file_contents(source))
        search = [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]
        searchpath = [path for base in search for path in (os.path.join(base, "templates"), base)]
        variables = {**task_vars, **extra}
        # what the template action adds (ansible_managed, template_path, ...), so a template renders the same
        variables.update(
            _template_vars.generate_ansible_template_vars(
                path=src, fullpath=source, dest_path=dest, include_ansible_managed="ansible_managed" not in variables
            )
        )
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        rendered = templar.template(
            template_data,
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
        )
        return "" if rendered is None else str(rendered)

    def _entry(self, entry: object, task_vars: dict) -> tuple[dict, str]:
        if not isinstance(entry, dict) or not entry.get("dest"):
            raise AnsibleActionFail(f"viocli_files: every entry needs a dest; got {entry!r}")
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise AnsibleActionFail(f"viocli_files: {entry['dest']}: unknown keys {sorted(unknown)}")
        dest = str(entry["dest"])
        meta = {
            "dest": dest,
            "owner": str(entry.get("owner") or "root"),
            "group": str(entry.get("group") or "root"),
            "mode": str(entry.get("mode") or ""),
            "state": str(entry.get("state") or "file"),
        }
        if entry.get("validate"):
            meta["validate"] = str(entry["validate"])
        kinds = [k for k in KINDS if k in entry]
        if meta["state"] == "directory":
            if kinds:
                raise AnsibleActionFail(f"viocli_files: {dest} is a directory; it takes no {kinds[0]}")
            return meta, ""
        if meta["state"] != "file" or len(kinds) != 1:
            raise AnsibleActionFail(f"viocli_files: {dest} needs exactly one of src, content or local")
        if kinds[0] == "src":
            extra = entry.get("vars") or {}
            if not isinstance(extra, dict):
                raise AnsibleActionFail(f"viocli_files: {dest}: vars must be a mapping")
            return meta, self._render(str(entry["src"]), dest, task_vars, extra)
        if kinds[0] == "local":
            try:
                with open(str(entry["local"]), encoding="utf-8") as handle:
                    return meta, handle.read()
            except OSError as error:
                message = f"viocli_files: {dest}: cannot read {entry['local']} on the OMS: {error}"
                raise AnsibleActionFail(message) from error
        return meta, str(entry["content"])

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        entries = self._task.args.get("files")
        if not isinstance(entries, list):
            raise AnsibleActionFail("viocli_files: files must be a list")
        metas, contents, no_diff = [], [], set()
        for entry in entries:
            meta, content = self._entry(entry, task_vars)
            metas.append(meta)
            contents.append(content)
            if entry.get("diff") is False or str(entry.get("diff")).lower() == "false":
                no_diff.add(meta["dest"])
        diff_mode = bool(self._play_context.diff)  # the task's own diff: keyword included
        wanted = [m["dest"] for m in metas if diff_mode and m["state"] == "file" and m["dest"] not in no_diff]
        module = self._execute_module(
            module_name="viocli_files",
            module_args={"files": metas, "contents": contents, "return_before": wanted},
            task_vars=task_vars,
        )
        before = module.pop("before", {}) or {}
        result.update(module)
        if module.get("failed"):
            return result
        if diff_mode and result.get("changed_paths"):
            by_path = dict(zip((m["dest"] for m in metas), contents, strict=True))
            result["diff"] = [
                {
                    "before_header": path,
                    "after_header": path,
                    "before": base64.b64decode(before.get(path, "")).decode("utf-8", errors="replace"),
                    "after": by_path[path],
                }
                for path in result["changed_paths"]
                if path in before
            ]
        return result
