"""The vSphere API's WSDL (vim25), generated from pyVmomi's own type metadata, for the lab's vCenter.

OpenStack's VMware drivers talk to vCenter through oslo.vmware, which uses suds: suds builds every request
and parses every response from the WSDL it downloads from ``https://<vcenter>/sdk/vimService.wsdl``.
govmomi's simulator serves no WSDL, and no vim25 WSDL ships with anything installable here, so the lab
writes its own from what pyVmomi knows about every type of the ``urn:vim25`` namespace:

- ``vimService.wsdl``: the service and its port (what clients load; it imports ``vim.wsdl``);
- ``vim.wsdl``: the elements, messages, port type and SOAP binding of every method, with its faults;
- ``vim-types.xsd``: every data object (``xsd:extension`` of its base type), enum (a restricted
  ``xsd:string``), ``ArrayOfX`` for each (the ``xsi:type`` of array property values), the primitive
  arrays and ``ManagedObjectReference`` (a string with a ``type`` attribute);
- ``vim-messagetypes.xsd``: ``<Method>RequestType`` for every method, ``_this`` first.

The layout follows vCenter's own. Generation takes under a second; :func:`write` keeps the files in a
directory stamped with a key of the pyVmomi version and this generator, so they are written once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from viocli.atomic import write_atomic

VIM_NAMESPACE = "urn:vim25"
SERVICE_NAMESPACE = "urn:vim25Service"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
WSDL_NAMESPACE = "http://schemas.xmlsoap.org/wsdl/"
SOAP_NAMESPACE = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"

SERVICE_WSDL = "vimService.wsdl"
VIM_WSDL = "vim.wsdl"
TYPES_XSD = "vim-types.xsd"
MESSAGES_XSD = "vim-messagetypes.xsd"
FILES = (SERVICE_WSDL, VIM_WSDL, TYPES_XSD, MESSAGES_XSD)
STAMP = ".vim-wsdl-key"
SERVICE_LOCATION = "https://localhost/sdk"  # clients pass the real address (suds' ``location``)

MOREF = "vim25:ManagedObjectReference"
RUNTIME_FAULT = "RuntimeFault"

# pyVmomi's F_* property and parameter flags (VmomiSupport's; not imported: importing this module stays cheap)
F_LINK = 1
F_OPTIONAL = 4

# VMODL names of the primitive and built-in types, and their XML schema types.
PRIMITIVES = {
    "string": "xsd:string",
    "boolean": "xsd:boolean",
    "bool": "xsd:boolean",
    "byte": "xsd:byte",
    "short": "xsd:short",
    "int": "xsd:int",
    "long": "xsd:long",
    "float": "xsd:float",
    "double": "xsd:double",
    "anyType": "xsd:anyType",
    "Link": "xsd:string",
    "vmodl.URI": "xsd:anyURI",
    "vmodl.Binary": "xsd:base64Binary",
    "vmodl.DateTime": "xsd:dateTime",
    "vmodl.TypeName": "xsd:string",
    "vmodl.MethodName": "xsd:string",
    "vmodl.PropertyPath": "xsd:string",
    "vmodl.DataObject": "xsd:anyType",
    "vmodl.ManagedObject": MOREF,
}

# Arrays of primitives as property values (``<val xsi:type="ArrayOfString"><string>..</string></val>``).
PRIMITIVE_ARRAYS = {
    "ArrayOfString": ("string", "xsd:string"),
    "ArrayOfBoolean": ("boolean", "xsd:boolean"),
    "ArrayOfByte": ("byte", "xsd:byte"),
    "ArrayOfShort": ("short", "xsd:short"),
    "ArrayOfInt": ("int", "xsd:int"),
    "ArrayOfLong": ("long", "xsd:long"),
    "ArrayOfFloat": ("float", "xsd:float"),
    "ArrayOfDouble": ("double", "xsd:double"),
    "ArrayOfDateTime": ("dateTime", "xsd:dateTime"),
    "ArrayOfAnyType": ("anyType", "xsd:anyType"),
    "ArrayOfAnyURI": ("anyURI", "xsd:anyURI"),
    "ArrayOfBase64Binary": ("base64Binary", "xsd:base64Binary"),
    "ArrayOfManagedObjectReference": ("ManagedObjectReference", MOREF),
}

FAULT_ROOT = "vmodl.methodFault"  # as TypeTable keys it
DATA_OBJECT = "DataObject"  # pyVmomi's abstract root of data objects: no WSDL type (DynamicData is the root)


# --- the model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One element of a sequence: a property, a method parameter or a return value."""

    name: str
    type: str  # qualified: xsd:string, vim25:VirtualDevice
    optional: bool = False
    array: bool = False


@dataclass(frozen=True)
class ComplexType:
    """A data object: its WSDL name, qualified base type (None at the root) and own elements, in order."""

    name: str
    base: str | None
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class EnumType:
    """An enumeration: a string restricted to its values."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Method:
    """A managed object method: WSDL name, parameters (``_this`` first), return value, fault type names."""

    name: str
    params: tuple[Element, ...]
    result: Element | None
    faults: tuple[str, ...]


@dataclass(frozen=True)
class ApiSchema:
    """Everything of one namespace the WSDL describes."""

    version: str
    types: tuple[ComplexType, ...]
    enums: tuple[EnumType, ...]
    methods: tuple[Method, ...]
    faults: tuple[str, ...]


# The fault roots, which pyVmomi creates in code, as vCenter's WSDL has them (a MethodFault-valued field is
# a LocalizedMethodFault on the wire).
BUILTIN_TYPES = (
    ComplexType(
        "MethodFault",
        None,
        (
            Element("faultCause", "vim25:LocalizedMethodFault", optional=True),
            Element("faultMessage", "vim25:LocalizableMessage", optional=True, array=True),
        ),
    ),
    ComplexType(RUNTIME_FAULT, "vim25:MethodFault", ()),
    ComplexType(
        "LocalizedMethodFault",
        "vim25:DynamicData",
        (Element("fault", "vim25:MethodFault"), Element("localizedMessage", "xsd:string", optional=True)),
    ),
)


# --- reading pyVmomi -----------------------------------------------------------------------------------


def _key(vmodl_name: str) -> str:
    """pyVmomi's lookup form of a VMODL name: each dotted part with a lower-case first letter."""
    return ".".join(part[:1].lower() + part[1:] for part in vmodl_name.split("."))


class TypeTable:
    """The type definitions pyVmomi registered for one XML namespace, by VMODL name.

    pyVmomi keeps them unloaded (a list of arguments per type) in ``VmomiSupport._wsdlDefMap``; reading
    the lists avoids creating thousands of Python classes. A data type's list has 5 items (name,
    WSDL name, parent, version, properties), a managed type's 6 (plus methods), an enum's 4 (name, WSDL
    name, version, values).
    """

    def __init__(self, definitions: Iterable[list[Any]]) -> None:
        self.data: dict[str, list[Any]] = {}
        self.managed: dict[str, list[Any]] = {}
        self.enums: dict[str, list[Any]] = {}
        for definition in definitions:
            table = {4: self.enums, 5: self.data, 6: self.managed}[len(definition)]
            table[_key(definition[0])] = definition

    @classmethod
    def from_pyvmomi(cls, namespace: str = VIM_NAMESPACE) -> TypeTable:
        """The table of ``namespace`` (``urn:vim25``) from the installed pyVmomi."""
        from pyVmomi import VmomiSupport

        return cls(d for (ns, _), d in sorted(VmomiSupport._wsdlDefMap.items()) if ns == namespace)

    def xml_type(self, vmodl_type: str, flags: int = 0) -> tuple[str, bool]:
        """The qualified XML type of a value (property, parameter, result), and whether it is an array.

        Links (``F_LINK``) are keys, hence strings; managed objects are references; a fault travels as a
        ``LocalizedMethodFault`` (pyVmomi wraps and unwraps it so); a type of another namespace (vSAN's,
        in a few vSAN methods) is ``xsd:anyType``.
        """
        array = vmodl_type.endswith("[]")
        name = vmodl_type.removesuffix("[]")
        if flags & F_LINK:
            return "xsd:string", array
        if self.is_fault(name):
            return "vim25:LocalizedMethodFault", array
        return self.type_name(name), array

    def type_name(self, vmodl_name: str) -> str:
        """The qualified XML name of a type itself (``vim25:InvalidLogin``, ``xsd:int``)."""
        if vmodl_name in PRIMITIVES:
            return PRIMITIVES[vmodl_name]
        key = _key(vmodl_name)
        if key in self.managed:
            return MOREF
        for table in (self.data, self.enums):
            if key in table:
                return f"vim25:{table[key][1]}"
        return "xsd:anyType"

    def is_fault(self, vmodl_name: str) -> bool:
        """Whether a type is vmodl.MethodFault or derives from it."""
        key = _key(vmodl_name)
        while key in self.data:
            if key == FAULT_ROOT:
                return True
            key = _key(self.data[key][2] or "")
        return False

    def element(self, name: str, vmodl_type: str, flags: int) -> Element:
        """An element for a property or parameter ``(name, type, version, flags, ...)``."""
        xml_type, array = self.xml_type(vmodl_type, flags)
        return Element(name, xml_type, optional=bool(flags & F_OPTIONAL), array=array)

    def complex_types(self) -> list[ComplexType]:
        """Every data object type, the built-in fault types included."""
        builtin = {t.name for t in BUILTIN_TYPES}
        types = list(BUILTIN_TYPES)
        for _name, wsdl_name, parent, _version, props in (self.data[key] for key in sorted(self.data)):
            if wsdl_name == DATA_OBJECT or wsdl_name in builtin:
                continue
            base = None if parent in (None, "vmodl.DataObject") else self.type_name(parent)
            elements = tuple(self.element(p[0], p[1], p[3]) for p in props or ())
            types.append(ComplexType(wsdl_name, base, elements))
        return types

    def enum_types(self) -> list[EnumType]:
        """Every enumeration."""
        return [EnumType(d[1], tuple(d[3] or ())) for _, d in sorted(self.enums.items())]

    def methods(self) -> list[Method]:
        """Every method of every managed type, once per WSDL name."""
        found: dict[str, Method] = {}
        for _, definition in sorted(self.managed.items()):
            for method in definition[5] or ():
                found.setdefault(method[1], self.method(method))
        return [found[name] for name in sorted(found)]

    def method(self, method: list[Any] | tuple[Any, ...]) -> Method:
        """A method from pyVmomi's ``(name, wsdlName, version, params, result, privilege, faults)``."""
        _, wsdl_name, _, params, (result_flags, result_type, _), _, faults = method
        elements = [Element("_this", MOREF)]
        elements += [self.element(p[0], p[1], p[3]) for p in params or ()]
        result = None if result_type == "void" else self.element("returnval", result_type, result_flags)
        names = [self.type_name(f).removeprefix("vim25:") for f in faults or ()]
        fault_names = tuple(dict.fromkeys([n for n in names if n != "xsd:anyType"] + [RUNTIME_FAULT]))
        return Method(wsdl_name, tuple(elements), result, fault_names)


def _fault_names(types: Iterable[ComplexType]) -> tuple[str, ...]:
    """The names of MethodFault and every type derived from it."""
    parents = {t.name: (t.base or "").removeprefix("vim25:") for t in types}

    def is_fault(name: str) -> bool:
        while name:
            if name == "MethodFault":
                return True
            name = parents.get(name, "")
        return False

    return tuple(sorted(name for name in parents if is_fault(name)))


def collect(table: TypeTable | None = None) -> ApiSchema:
    """Read the vim25 API from pyVmomi (or ``table``)."""
    table = table or TypeTable.from_pyvmomi()
    types = table.complex_types()
    return ApiSchema(
        version=_api_version(),
        types=tuple(types),
        enums=tuple(table.enum_types()),
        methods=tuple(table.methods()),
        faults=_fault_names(types),
    )


def _api_version() -> str:
    """The newest vim25 version pyVmomi knows, e.g. ``9.1.1.0`` (the WSDL's SOAPAction)."""
    from pyVmomi import VmomiSupport

    return VmomiSupport.newestVersions.GetWireId("vim").split("/", 1)[1]


# --- writing XML ------------------------------------------------------------------------------------


def _attrs(**values: str | None) -> str:
    return "".join(f" {name}={quoteattr(value)}" for name, value in values.items() if value is not None)


def _element_xml(element: Element, indent: str) -> str:
    return (
        f"{indent}<element"
        + _attrs(
            name=element.name,
            type=element.type,
            minOccurs="0" if element.optional else None,
            maxOccurs="unbounded" if element.array else None,
        )
        + " />"
    )


def _sequence_xml(elements: Iterable[Element], indent: str) -> Iterator[str]:
    yield f"{indent}<sequence>"
    for element in elements:
        yield _element_xml(element, indent + "   ")
    yield f"{indent}</sequence>"


def _complex_type_xml(complex_type: ComplexType) -> Iterator[str]:
    yield f"   <complexType name={quoteattr(complex_type.name)}>"
    if complex_type.base is None:
        yield from _sequence_xml(complex_type.elements, "      ")
    else:
        yield "      <complexContent>"
        yield f"         <extension base={quoteattr(complex_type.base)}>"
        yield from _sequence_xml(complex_type.elements, "            ")
        yield "         </extension>"
        yield "      </complexContent>"
    yield "   </complexType>"


def _array_type_xml(name: str, item: str, item_type: str) -> Iterator[str]:
    yield f"   <complexType name={quoteattr(name)}>"
    yield from _sequence_xml([Element(item, item_type, optional=True, array=True)], "      ")
    yield "   </complexType>"


def _enum_xml(enum: EnumType) -> Iterator[str]:
    yield f"   <simpleType name={quoteattr(enum.name)}>"
    yield '      <restriction base="xsd:string">'
    for value in enum.values:
        yield f"         <enumeration value={quoteattr(value)} />"
    yield "      </restriction>"
    yield "   </simpleType>"


def _schema_document(body: Iterable[str]) -> str:
    head = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        f"<schema{_attrs(targetNamespace=VIM_NAMESPACE, xmlns=XSD_NAMESPACE)}"
        f"{_attrs(**{'xmlns:vim25': VIM_NAMESPACE, 'xmlns:xsd': XSD_NAMESPACE})}"
        ' elementFormDefault="qualified">'
    )
    return "\n".join([head, *body, "</schema>", ""])


def render_types(schema: ApiSchema) -> str:
    """``vim-types.xsd``: references, data objects, enums and their arrays."""

    def body() -> Iterator[str]:
        yield '   <complexType name="ManagedObjectReference">'
        yield "      <simpleContent>"
        yield '         <extension base="xsd:string">'
        yield '            <attribute name="type" type="xsd:string" />'
        yield "         </extension>"
        yield "      </simpleContent>"
        yield "   </complexType>"
        for name, (item, item_type) in PRIMITIVE_ARRAYS.items():
            yield from _array_type_xml(name, item, item_type)
        for enum in schema.enums:
            yield from _enum_xml(enum)
            yield from _array_type_xml(f"ArrayOf{enum.name}", enum.name, f"vim25:{enum.name}")
        for complex_type in schema.types:
            yield from _complex_type_xml(complex_type)
            name = complex_type.name
            yield from _array_type_xml(f"ArrayOf{name}", name, f"vim25:{name}")

    return _schema_document(body())


def render_message_types(schema: ApiSchema) -> str:
    """``vim-messagetypes.xsd``: the ``<Method>RequestType`` of each method (it includes the types)."""

    def body() -> Iterator[str]:
        yield f"   <include schemaLocation={quoteattr(TYPES_XSD)} />"
        for method in schema.methods:
            yield from _complex_type_xml(ComplexType(f"{method.name}RequestType", None, method.params))

    return _schema_document(body())


def _wsdl_schema(schema: ApiSchema) -> Iterator[str]:
    """The ``<types>`` of vim.wsdl: request, response and fault elements; the types are included."""
    yield "   <types>"
    yield (
        f"      <schema{_attrs(targetNamespace=VIM_NAMESPACE, xmlns=XSD_NAMESPACE)}"
        f"{_attrs(**{'xmlns:vim25': VIM_NAMESPACE, 'xmlns:xsd': XSD_NAMESPACE})}"
        ' elementFormDefault="qualified">'
    )
    yield f"         <include schemaLocation={quoteattr(MESSAGES_XSD)} />"
    yield f"         <include schemaLocation={quoteattr(TYPES_XSD)} />"
    for fault in schema.faults:
        yield f"         <element{_attrs(name=f'{fault}Fault', type=f'vim25:{fault}')} />"
    for method in schema.methods:
        yield f"         <element{_attrs(name=method.name, type=f'vim25:{method.name}RequestType')} />"
        yield f"         <element name={quoteattr(method.name + 'Response')}>"
        yield "            <complexType>"
        if method.result is None:
            yield "               <sequence />"
        else:
            yield from _sequence_xml([method.result], "               ")
        yield "            </complexType>"
        yield "         </element>"
    yield "      </schema>"
    yield "   </types>"


def _wsdl_messages(schema: ApiSchema) -> Iterator[str]:
    for fault in schema.faults:
        yield f"   <message name={quoteattr(fault + 'FaultMsg')}>"
        yield f"      <part{_attrs(name='fault', element=f'vim25:{fault}Fault')} />"
        yield "   </message>"
    for method in schema.methods:
        for suffix, element in (("RequestMsg", method.name), ("ResponseMsg", method.name + "Response")):
            yield f"   <message name={quoteattr(method.name + suffix)}>"
            yield f"      <part{_attrs(name='parameters', element=f'vim25:{element}')} />"
            yield "   </message>"


def _wsdl_port_type(schema: ApiSchema) -> Iterator[str]:
    yield '   <portType name="VimPortType">'
    for method in schema.methods:
        yield f"      <operation name={quoteattr(method.name)}>"
        yield f"         <input message={quoteattr(f'vim25:{method.name}RequestMsg')} />"
        yield f"         <output message={quoteattr(f'vim25:{method.name}ResponseMsg')} />"
        for fault in method.faults:
            yield f"         <fault{_attrs(name=fault, message=f'vim25:{fault}FaultMsg')} />"
        yield "      </operation>"
    yield "   </portType>"


def _wsdl_binding(schema: ApiSchema) -> Iterator[str]:
    action = f"{VIM_NAMESPACE}/{schema.version}"
    yield '   <binding name="VimBinding" type="vim25:VimPortType">'
    yield f'      <soap:binding style="document" transport={quoteattr(SOAP_HTTP)} />'
    for method in schema.methods:
        yield f"      <operation name={quoteattr(method.name)}>"
        yield f'         <soap:operation soapAction={quoteattr(action)} style="document" />'
        yield '         <input><soap:body use="literal" /></input>'
        yield '         <output><soap:body use="literal" /></output>'
        for fault in method.faults:
            name = quoteattr(fault)
            yield f'         <fault name={name}><soap:fault name={name} use="literal" /></fault>'
        yield "      </operation>"
    yield "   </binding>"


def render_vim_wsdl(schema: ApiSchema) -> str:
    """``vim.wsdl``: elements, messages, the port type and the SOAP binding of every method."""
    namespaces = {"xmlns:soap": SOAP_NAMESPACE, "xmlns:vim25": VIM_NAMESPACE, "xmlns:xsd": XSD_NAMESPACE}
    head = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        f"<definitions{_attrs(targetNamespace=VIM_NAMESPACE, xmlns=WSDL_NAMESPACE, **namespaces)}>"
    )
    parts = [_wsdl_schema(schema), _wsdl_messages(schema), _wsdl_port_type(schema), _wsdl_binding(schema)]
    return "\n".join([head, *(line for part in parts for line in part), "</definitions>", ""])


def render_service_wsdl(location: str = SERVICE_LOCATION) -> str:
    """``vimService.wsdl``: imports vim.wsdl and names the service, its port and address."""
    namespaces = {"xmlns:soap": SOAP_NAMESPACE, "xmlns:interface": VIM_NAMESPACE}
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8" ?>',
            f"<definitions{_attrs(targetNamespace=SERVICE_NAMESPACE, xmlns=WSDL_NAMESPACE, **namespaces)}>",
            f"   <import{_attrs(location=VIM_WSDL, namespace=VIM_NAMESPACE)} />",
            '   <service name="VimService">',
            '      <port binding="interface:VimBinding" name="VimPort">',
            f"         <soap:address location={quoteattr(location)} />",
            "      </port>",
            "   </service>",
            "</definitions>",
            "",
        ]
    )


# --- files ----------------------------------------------------------------------------------------------


@functools.cache
def generate() -> dict[str, bytes]:
    """The four files, by name, for the installed pyVmomi (computed once per process)."""
    schema = collect()
    texts = {
        SERVICE_WSDL: render_service_wsdl(),
        VIM_WSDL: render_vim_wsdl(schema),
        TYPES_XSD: render_types(schema),
        MESSAGES_XSD: render_message_types(schema),
    }
    return {name: text.encode() for name, text in texts.items()}


def cache_key() -> str:
    """A key of the pyVmomi version and this generator's source: the files change only with them."""
    digest = hashlib.sha256(importlib.metadata.version("pyvmomi").encode() + b"\0")
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:32]


def write(directory: Path) -> Path:
    """Make ``directory`` hold the WSDL files (written only if its stamp is not the current key)."""
    key = cache_key()
    stamp = directory / STAMP
    with contextlib.suppress(OSError):
        if stamp.read_text(encoding="utf-8") == key and all((directory / name).is_file() for name in FILES):
            return directory
    directory.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for name, data in generate().items():
        write_atomic(directory / name, data, 0o644)  # public, as on vCenter
    write_atomic(stamp, key.encode(), 0o644)
    return directory
