"""The vim25 WSDL generated from pyVmomi: its shape, its consistency and its cache."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from viocli.lab import vim_wsdl

XSD = "{http://www.w3.org/2001/XMLSchema}"
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"


@functools.cache
def documents() -> dict[str, ET.Element]:
    return {name: ET.fromstring(data) for name, data in vim_wsdl.generate().items()}


def named(root: ET.Element, tag: str) -> dict[str, ET.Element]:
    return {e.get("name"): e for e in root.iter(tag)}


def complex_type(name: str) -> ET.Element:
    return named(documents()[vim_wsdl.TYPES_XSD], f"{XSD}complexType")[name]


def elements(parent: ET.Element) -> dict[str, ET.Element]:
    return {e.get("name"): e for e in parent.iter(f"{XSD}element")}


def test_every_referenced_type_is_defined() -> None:
    types_doc, messages_doc, vim_doc = (documents()[n] for n in (vim_wsdl.TYPES_XSD, vim_wsdl.MESSAGES_XSD, "vim.wsdl"))
    defined = {
        e.get("name")
        for doc in (types_doc, messages_doc)
        for e in doc.iter()
        if e.tag in (f"{XSD}complexType", f"{XSD}simpleType")
    }
    references = {
        value.split(":", 1)[1]
        for doc in (types_doc, messages_doc, vim_doc)
        for e in doc.iter()
        if e.tag.startswith(XSD)
        for attr in ("type", "base")
        if (value := e.get(attr) or "").startswith("vim25:")
    }
    assert references - defined == set()
    assert len(defined) > 5000  # data objects, enums, their arrays and the request types

    def names(tag: str, attr: str) -> set[str]:
        return {e.get(attr).removeprefix("vim25:") for e in vim_doc.iter(tag) if e.get(attr)}

    assert names(f"{WSDL}part", "element") <= names(f"{XSD}element", "name")
    messages = names(f"{WSDL}message", "name")
    assert names(f"{WSDL}input", "message") | names(f"{WSDL}output", "message") <= messages
    assert names(f"{WSDL}fault", "message") <= messages
    assert names(f"{WSDL}operation", "name") >= {"RetrieveServiceContent", "Login", "RetrievePropertiesEx"}


def test_data_objects_extend_their_base_and_keep_wsdl_names() -> None:
    spec = complex_type("VirtualMachineConfigSpec")
    assert spec.find(f"{XSD}complexContent/{XSD}extension").get("base") == "vim25:DynamicData"
    props = elements(spec)
    assert props["numCPUs"].get("type") == "xsd:int" and props["numCPUs"].get("minOccurs") == "0"
    assert props["deviceChange"].get("maxOccurs") == "unbounded"
    assert props["extraConfig"].get("type") == "vim25:OptionValue"
    assert elements(complex_type("VirtualDevice"))["backing"].get("type") == "vim25:VirtualDeviceBackingInfo"
    extension = complex_type("ClusterComputeResourceSummary").find(f"{XSD}complexContent/{XSD}extension")
    assert extension.get("base") == "vim25:ComputeResourceSummary"


def test_references_faults_links_and_any_values() -> None:
    moref = complex_type("ManagedObjectReference").find(f"{XSD}simpleContent/{XSD}extension")
    assert moref.get("base") == "xsd:string"
    assert moref.find(f"{XSD}attribute").get("name") == "type"
    assert elements(complex_type("ObjectSpec"))["obj"].get("type") == "vim25:ManagedObjectReference"
    assert elements(complex_type("DynamicProperty"))["val"].get("type") == "xsd:anyType"
    # a MethodFault-valued property travels as a LocalizedMethodFault, as pyVmomi sends and expects it
    assert elements(complex_type("TaskInfo"))["error"].get("type") == "vim25:LocalizedMethodFault"
    assert elements(complex_type("MissingProperty"))["fault"].get("type") == "vim25:LocalizedMethodFault"
    assert elements(complex_type("LocalizedMethodFault"))["fault"].get("type") == "vim25:MethodFault"
    # a link is the key of the object it names
    assert elements(complex_type("HostProxySwitch"))["pnic"].get("type") == "xsd:string"
    arrays = elements(complex_type("ArrayOfManagedObjectReference"))
    assert arrays["ManagedObjectReference"].get("maxOccurs") == "unbounded"
    assert elements(complex_type("ArrayOfString"))["string"].get("type") == "xsd:string"
    invalid_login = complex_type("InvalidLogin").find(f"{XSD}complexContent/{XSD}extension")
    assert invalid_login.get("base") == "vim25:VimFault"


def test_flags_and_roots_match_pyvmomi() -> None:
    from pyVmomi import VmomiSupport

    assert (vim_wsdl.F_LINK, vim_wsdl.F_OPTIONAL) == (VmomiSupport.F_LINK, VmomiSupport.F_OPTIONAL)
    types = named(documents()[vim_wsdl.TYPES_XSD], f"{XSD}complexType")
    assert "DataObject" not in types and "DynamicData" in types
    assert complex_type("DynamicData").find(f"{XSD}complexContent") is None  # the root


def test_enums_are_restricted_strings() -> None:
    simple = named(documents()[vim_wsdl.TYPES_XSD], f"{XSD}simpleType")["VirtualMachinePowerState"]
    restriction = simple.find(f"{XSD}restriction")
    assert restriction.get("base") == "xsd:string"
    assert [e.get("value") for e in restriction] == ["poweredOff", "poweredOn", "suspended"]
    assert "ArrayOfVirtualMachinePowerState" in named(documents()[vim_wsdl.TYPES_XSD], f"{XSD}complexType")


def test_methods_have_request_response_and_faults() -> None:
    request = named(documents()[vim_wsdl.MESSAGES_XSD], f"{XSD}complexType")["RetrievePropertiesExRequestType"]
    assert [e.get("name") for e in request.iter(f"{XSD}element")] == ["_this", "specSet", "options"]
    vim = documents()["vim.wsdl"]
    schema_elements = named(vim, f"{XSD}element")
    assert schema_elements["RetrievePropertiesEx"].get("type") == "vim25:RetrievePropertiesExRequestType"
    (returnval,) = list(schema_elements["RetrievePropertiesExResponse"].iter(f"{XSD}element"))[1:]
    assert (returnval.get("name"), returnval.get("type"), returnval.get("minOccurs")) == (
        "returnval",
        "vim25:RetrieveResult",
        "0",
    )
    assert len(list(schema_elements["DestroyPropertyFilterResponse"].iter(f"{XSD}element"))) == 1  # itself
    login = named(vim, f"{WSDL}operation")["Login"]
    assert {f.get("name") for f in login.iter(f"{WSDL}fault")} >= {"InvalidLogin", "InvalidLocale", "RuntimeFault"}
    assert schema_elements["InvalidLoginFault"].get("type") == "vim25:InvalidLogin"
    action = next(vim.iter("{http://schemas.xmlsoap.org/wsdl/soap/}operation")).get("soapAction")
    assert action.startswith("urn:vim25/")


def test_service_imports_vim_wsdl() -> None:
    service = documents()[vim_wsdl.SERVICE_WSDL]
    assert service.get("targetNamespace") == "urn:vim25Service"
    assert service.find(f"{WSDL}import").get("location") == "vim.wsdl"
    port = service.find(f"{WSDL}service/{WSDL}port")
    assert port.get("binding") == "interface:VimBinding"


def test_write_keeps_files_until_the_key_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = vim_wsdl.write(tmp_path / "wsdl")
    assert sorted(p.name for p in directory.iterdir()) == sorted([*vim_wsdl.FILES, vim_wsdl.STAMP])
    assert {(directory / n).read_bytes() == d for n, d in vim_wsdl.generate().items()} == {True}
    assert (directory / vim_wsdl.SERVICE_WSDL).stat().st_mode & 0o777 == 0o644
    stamp_time = (directory / vim_wsdl.STAMP).stat().st_mtime_ns
    assert vim_wsdl.write(directory) == directory
    assert (directory / vim_wsdl.STAMP).stat().st_mtime_ns == stamp_time  # nothing rewritten

    (directory / vim_wsdl.VIM_WSDL).write_text("damaged")
    monkeypatch.setattr(vim_wsdl, "cache_key", lambda: "another pyVmomi")
    vim_wsdl.write(directory)
    assert (directory / vim_wsdl.VIM_WSDL).read_bytes() == vim_wsdl.generate()[vim_wsdl.VIM_WSDL]
    assert (directory / vim_wsdl.STAMP).read_text() == "another pyVmomi"
