"""A column report engine with libdm's behaviour (``dmsetup -c/-o/-O/-S``).

Pure: no device-mapper knowledge.  A report is built from object types (bit ids,
descriptions, field-name prefixes) and field types (id, heading, width, kind, value
function); callers add objects, then ``output()`` returns the lines to print.
Nothing here prints: messages that libdm prints (help listings, errors) go through the
``warn``/``error`` callbacks (by default they are kept in ``Report.messages``); a
failed initialisation raises ReportError after its messages were sent.

Behaviour follows libdm-report.c (1.02.185): field ids match case-insensitively with
underscores ignored and an optional type prefix; ``all`` and ``<prefix>all`` expand
to whole categories; ``-o help``/``?`` lists the fields; sort keys take ``+``/``-``;
widths grow to the longest shown value, numbers are right-aligned and the last
column is padded too; ``--rows`` transposes; name prefixes print ``PREFIX_ID='v'``.
"""

import re

from dmctl.errors import DmctlError

STR = "string"
NUM = "number"
SIZ = "size"
PCT = "percent"
TIM = "time"
STRLIST = "string list"

SPECIAL_TYPE = 0x80000000
ALL_TYPES = 0xFFFFFFFF

# Output flags
ALIGNED = 1
BUFFERED = 2
HEADINGS = 4
FIELD_NAME_PREFIX = 8
UNQUOTED = 16
COLUMNS_AS_ROWS = 32


class ReportError(DmctlError):
    """Report set-up failed; its messages were already emitted."""


class FieldError(DmctlError):
    """A field's value function failed (its own message was printed); the engine
    adds libdm's "report function failed" line and re-raises."""


class ObjType:
    __slots__ = ("id", "desc", "prefix")

    def __init__(self, id, desc, prefix):
        self.id = id
        self.desc = desc
        self.prefix = prefix


class Field:
    """A field type.  ``fn(obj) -> value`` where value is an int (NUM) or str; or a
    (report_string, sort_value) tuple.  ``obj`` is what the object type's getter
    gives for the object added (see Report.add)."""
    __slots__ = ("type", "kind", "heading", "width", "id", "desc", "fn", "uncomparable")

    def __init__(self, type, kind, heading, width, id, desc, fn=None, uncomparable=False):
        self.type = type
        self.kind = kind
        self.heading = heading
        self.width = width
        self.id = id
        self.desc = desc
        self.fn = fn
        self.uncomparable = uncomparable


_SPECIAL_TYPES = [ObjType(SPECIAL_TYPE, "Special", "special_")]
_SPECIAL_FIELDS = [
    Field(SPECIAL_TYPE, NUM, "Selected", 8, "selected", "Set if item passes selection criteria."),
    Field(SPECIAL_TYPE, NUM, "Help", 8, "help", "Show help.", uncomparable=True),
    Field(SPECIAL_TYPE, NUM, "Help", 8, "?", "Show help.", uncomparable=True),
]

# Comparison operators (longest first where one is a prefix of another).
_F_EQ, _F_NOT, _F_GT, _F_LT, _F_REGEX, _F_NUMBER, _F_TIME = 1, 2, 4, 8, 16, 32, 64
_OP_CMP = [
    ("=~", _F_REGEX, "Matching regular expression. [regex]"),
    ("!~", _F_REGEX | _F_NOT, "Not matching regular expression. [regex]"),
    ("=", _F_EQ, "Equal to. [number, size, percent, string, string list, time]"),
    ("!=", _F_NOT | _F_EQ, "Not equal to. [number, size, percent, string, string_list, time]"),
    (">=", _F_NUMBER | _F_TIME | _F_GT | _F_EQ, "Greater than or equal to. [number, size, percent, time]"),
    (">", _F_NUMBER | _F_TIME | _F_GT, "Greater than. [number, size, percent, time]"),
    ("<=", _F_NUMBER | _F_TIME | _F_LT | _F_EQ, "Less than or equal to. [number, size, percent, time]"),
    ("<", _F_NUMBER | _F_TIME | _F_LT, "Less than. [number, size, percent, time]"),
    ("since", _F_TIME | _F_GT | _F_EQ, "Since specified time (same as '>='). [time]"),
    ("after", _F_TIME | _F_GT, "After specified time (same as '>'). [time]"),
    ("until", _F_TIME | _F_LT | _F_EQ, "Until specified time (same as '<='). [time]"),
    ("before", _F_TIME | _F_LT, "Before specified time (same as '<'). [time]"),
]
_AND, _OR, _NOTM, _PS, _PE, _LS, _LE, _SLS, _SLE = 1, 2, 4, 8, 16, 32, 64, 128, 256
_OP_LOG = [
    ("&&", _AND, "All fields must match"),
    (",", _AND, "All fields must match"),
    ("||", _OR, "At least one field must match"),
    ("#", _OR, "At least one field must match"),
    ("!", _NOTM, "Logical negation"),
    ("(", _PS, "Left parenthesis"),
    (")", _PE, "Right parenthesis"),
    ("[", _LS, "List start"),
    ("]", _LE, "List end"),
    ("{", _SLS, "List subset start"),
    ("}", _SLE, "List subset end"),
]

_SEL_SYNTAX = "Selection syntax error at '%s'."
_SEL_HELP_REF = "Use 'help' for selection to get more help."


def _canon(s):
    return s.replace("_", "")


def _c_isspace(c):
    return c in " \t\n\v\f\r"


def _skip_space(s, i):
    while i < len(s) and _c_isspace(s[i]):
        i += 1
    return i


class _FieldProps:
    __slots__ = ("num", "implicit", "field", "width", "initial_width", "hidden",
                 "sort_key", "sort_posn", "descending", "type")

    def __init__(self, num, implicit, field, hidden, type):
        self.num = num
        self.implicit = implicit
        self.field = field
        self.width = field.width
        self.initial_width = field.width
        self.hidden = hidden
        self.sort_key = False
        self.sort_posn = 0
        self.descending = False
        self.type = type


class _Row:
    __slots__ = ("values", "selected", "has_sel_field")

    def __init__(self):
        self.values = []          # [(props, report_string, sort_value)]
        self.selected = True
        self.has_sel_field = False


class _Sel:
    """A selection node: ('item', props, flags, value) or ('and'/'or', [nodes])."""
    __slots__ = ("kind", "props", "flags", "value", "children", "negate")

    def __init__(self, kind, props=None, flags=0, value=None, children=None):
        self.kind = kind
        self.props = props
        self.flags = flags
        self.value = value
        self.children = children if children is not None else []
        self.negate = False


class Report:
    def __init__(self, types, fields, output_fields, separator=" ",
                 flags=ALIGNED | BUFFERED | HEADINGS, sort_keys="", selection=None,
                 report_types=0, warn=None, error=None, field_name_prefix=""):
        self.types = list(types)
        self.fields = list(fields)
        self.separator = separator
        self.flags = flags
        if flags & COLUMNS_AS_ROWS:
            self.flags |= BUFFERED
            self.flags &= ~ALIGNED
        self.sort_required = bool(self.flags & BUFFERED)
        self.messages = []      # what warn/error got, when the caller gave no callback
        self.warn = warn or self.messages.append
        self.error = error or self.warn
        self.report_types = report_types
        self.props = []
        self.rows = []
        self.keys_count = 0
        self.selection = None
        self.already_reported = False
        self.headings_printed = False
        self.output_prefix = field_name_prefix.upper()
        self.canon_ids = [_canon(f.id) for f in self.fields]
        t = self._find_type(self.report_types)
        self.field_prefix = t.prefix if t is not None else ""

        output_fields = output_fields or ""
        # First pass: report types only; second: build the field list.
        self._parse_fields(output_fields, True)
        self._parse_keys(sort_keys, True)
        self._parse_fields(output_fields, False)
        self._parse_keys(sort_keys, False)

        if self._help_requested():
            self.display_fields(True, False)
            self.warn(" ")
            self.already_reported = True

        if selection:
            if selection.lower() == "help" or selection == "?":
                self.display_fields(False, True)
                self.warn(" ")
                self.display_selection_help()
                self.already_reported = True
            elif selection.lower() != "all":
                self._set_selection(selection)

    # ------------------------------------------------------------------ lookup
    def _find_type(self, type_id):
        for t in _SPECIAL_TYPES + self.types:
            if t.id == type_id:
                return t
        return None

    def _type_of(self, field):
        for t in _SPECIAL_TYPES + self.types:
            if t.id == field.type:
                return t
        return None

    def _is_same_field(self, canon_id, canon_in):
        if canon_id.lower() == canon_in.lower():
            return True
        plen = len(self.field_prefix) - 1
        if plen > 0 and canon_in[:plen].lower() == self.field_prefix[:plen].lower() \
                and canon_in[plen:].lower() == canon_id.lower():
            return True
        # An empty prefix (strlen - 1 == -1 in C) never matches a prefixed form.
        return False

    def _get_field(self, name):
        if not name:
            return None
        c = _canon(name)
        for i, f in enumerate(_SPECIAL_FIELDS):
            if self._is_same_field(f.id, c):
                return i, True
        for i, cid in enumerate(self.canon_ids):
            if self._is_same_field(cid, c):
                return i, False
        return None

    def _all_match(self, name):
        report_types = 0
        unprefixed_all = False
        if name.lower() == "all":
            if not self.field_prefix:
                return self.report_types or ALL_TYPES
            unprefixed_all = True
            name = self.field_prefix
            report_types = self.report_types
        c = _canon(name)
        for t in self.types:
            plen = len(t.prefix) - 1
            if c[:plen].lower() == t.prefix[:plen].lower() and (
                    (unprefixed_all and len(c) == plen) or
                    (c[plen:plen + 3].lower() == "all" and len(c) == plen + 3)):
                report_types |= t.id
        return report_types

    def _field_def(self, num, implicit):
        return _SPECIAL_FIELDS[num] if implicit else self.fields[num]

    def _add_field(self, num, implicit, hidden=False):
        f = self._field_def(num, implicit)
        p = _FieldProps(num, implicit, f, hidden, self._type_of(f))
        if hidden:
            self.props.insert(0, p)
        else:
            self.props.append(p)
        return p

    def _field_match(self, name, type_only):
        if not name:
            return False
        r = self._get_field(name)
        if r is not None:
            num, implicit = r
            if type_only:
                self.report_types |= self._field_def(num, implicit).type
            else:
                self._add_field(num, implicit)
            return True
        t = self._all_match(name)
        if t:
            if type_only:
                self.report_types |= t
            else:
                for i, f in enumerate(self.fields):
                    if f.type & t:
                        self._add_field(i, False)
            return True
        return False

    @staticmethod
    def _words(s):
        i = 0
        n = len(s)
        while i < n:
            while i < n and s[i] == ",":
                i += 1
            j = i
            while j < n and s[j] != ",":
                j += 1
            yield s[i:j]
            i = j

    def _parse_fields(self, spec, type_only):
        for w in self._words(spec):
            if not self._field_match(w, type_only):
                self.display_fields(True, False)
                self.warn(" ")
                self.error("Unrecognised field: %s" % w)
                raise ReportError(w)

    def _add_sort_key(self, num, implicit, descending, type_only):
        found = None
        for p in self.props:
            if p.implicit == implicit and p.num == num:
                found = p
                break
        if found is None:
            if type_only:
                self.report_types |= self._field_def(num, implicit).type
                return True
            found = self._add_field(num, implicit, hidden=True)
        if type_only:
            return True
        if found.sort_key:
            self.warn("dm_report: Ignoring duplicate sort field: %s." % found.field.id)
            return True
        found.sort_key = True
        found.sort_posn = self.keys_count
        self.keys_count += 1
        found.descending = descending
        return True

    def _key_match(self, key, type_only):
        if not key:
            return False
        descending = False
        if key[0] in "+-":
            descending = key[0] == "-"
            key = key[1:]
        if not key:
            self.error("dm_report: Missing sort field name")
            return False
        c = _canon(key)
        for i, f in enumerate(_SPECIAL_FIELDS):
            if self._is_same_field(f.id, c):
                return self._add_sort_key(i, True, descending, type_only)
        for i, cid in enumerate(self.canon_ids):
            if self._is_same_field(cid, c):
                return self._add_sort_key(i, False, descending, type_only)
        return False

    def _parse_keys(self, keys, type_only):
        if not keys:
            return
        for w in self._words(keys):
            if not self._key_match(w, type_only):
                self.display_fields(True, False)
                self.warn(" ")
                self.error("dm_report: Unrecognised field: %s" % w)
                raise ReportError(w)

    def _help_requested(self):
        return any(p.implicit and p.field.id in ("help", "?") for p in self.props)

    # ------------------------------------------------------------------ help
    def display_fields(self, all_item, field_types):
        id_len = max(len(f.id) for f in _SPECIAL_FIELDS + self.fields)
        self._display_fields_more(self.fields, id_len, all_item, field_types)
        self.warn(" ")
        self._display_fields_more(_SPECIAL_FIELDS, id_len, all_item, field_types)

    def _display_fields_more(self, fields, id_len, all_item, field_types):
        for f in fields:
            id_len = max(id_len, len(f.id))
        for t in self.types:
            id_len = max(id_len, len(t.prefix) + 3)
        last_desc = ""
        for f in fields:
            t = self._type_of(f)
            if t is None:
                continue
            desc = t.desc or " "
            if desc != last_desc:
                if last_desc:
                    self.warn(" ")
                self.warn("%s Fields" % desc)
                self.warn("-" * (len(desc) + 7))
                if all_item and t.id != SPECIAL_TYPE:
                    self.warn("  %sall%s - %s" % (t.prefix, " " * (id_len - 3 - len(t.prefix)),
                                                  "All fields in this section."))
            extra = ""
            if field_types:
                extra = " [%s%s]" % ("unselectable " if f.uncomparable else "", f.kind)
            self.warn("  %-*s - %s%s" % (id_len, f.id, f.desc, extra))
            last_desc = desc

    def display_selection_help(self):
        w = self.warn
        w("Selection operands")
        w("------------------")
        w("  field               - Reporting field.")
        w("  number              - Non-negative integer value.")
        w("  size                - Floating point value with units, 'm' unit used by default if not specified.")
        w("  percent             - Non-negative integer with or without % suffix.")
        w("  string              - Characters quoted by ' or \" or unquoted.")
        w("  string list         - Strings enclosed by [ ] or { } and elements delimited by either")
        w("                        \"all items must match\" or \"at least one item must match\" operator.")
        w("  regular expression  - Characters quoted by ' or \" or unquoted.")
        w(" ")
        w("Selection operators")
        w("-------------------")
        w("  Comparison operators:")
        for s, _f, d in _OP_CMP:
            w("    %6s  - %s" % (s, d))
        w(" ")
        w("  Logical and grouping operators:")
        for s, _f, d in _OP_LOG:
            w("    %4s  - %s" % (s, d))
        w(" ")

    # ------------------------------------------------------------------ selection
    @staticmethod
    def _tok_op(table, s, i, expect):
        i = _skip_space(s, i)
        for text, flags, _d in table:
            if expect and not (flags & expect):
                continue
            if s.startswith(text, i):
                return flags, i + len(text)
        return 0, i

    def _sel_fail(self, s, start):
        self.error(_SEL_SYNTAX % s[start:])
        self.error(_SEL_HELP_REF)
        raise ReportError("selection")

    def _set_selection(self, s):
        root = _Sel("or")
        _n, i = self._parse_or(s, 0, root)
        j = _skip_space(s, i)
        if j < len(s):
            self.error("Expecting logical operator")
            self.error(_SEL_SYNTAX % s[j:])
            self.error(_SEL_HELP_REF)
            raise ReportError("selection")
        self.selection = root

    def _parse_or(self, s, i, or_node=None):
        """OR_EXPRESSION := AND_EXPRESSION (OR_OP OR_EXPRESSION)"""
        return self._parse_chain(s, i, or_node, self._parse_and, _OR, "or")

    def _parse_and(self, s, i, and_node=None):
        """AND_EXPRESSION := EX (AND_OP AND_EXPRESSION)"""
        return self._parse_chain(s, i, and_node, self._parse_ex, _AND, "and")

    def _parse_chain(self, s, i, node, sub, op, kind):
        while True:
            n, i = sub(s, i)
            flags, j = self._tok_op(_OP_LOG, s, i, op)
            if not flags:
                if node is None:
                    return n, i
                node.children.append(n)
                return node, i
            if node is None:
                node = _Sel(kind)
            node.children.append(n)
            i = j

    def _parse_ex(self, s, i):
        t, j = self._tok_op(_OP_LOG, s, i, _NOTM | _PS)
        if t == _NOTM:
            t2, k = self._tok_op(_OP_LOG, s, j, _PS)
            if not t2:
                self.error("Syntax error: left parenthesis expected at '%s'" % s[j:])
                raise ReportError("selection")
            n, j = self._parse_or(s, k)
            n = self._wrap(n)
            n.negate = not n.negate
            t3, k = self._tok_op(_OP_LOG, s, j, _PE)
            if not t3:
                self.error("Syntax error: right parenthesis expected at '%s'" % s[j:])
                raise ReportError("selection")
            return n, k
        if t == _PS:
            n, k = self._parse_or(s, j)
            t3, j2 = self._tok_op(_OP_LOG, s, k, _PE)
            if not t3:
                self.error("Syntax error: right parenthesis expected at '%s'" % s[j:])
                raise ReportError("selection")
            return self._wrap(n), j2
        return self._parse_item(s, _skip_space(s, i))

    @staticmethod
    def _wrap(n):
        if n.kind == "item":
            w = _Sel("and", children=[n])
            return w
        return n

    def _parse_item(self, s, start):
        i = start
        while i < len(s) and (s[i].isalnum() and s[i].isascii() or s[i] in "_-"):
            i += 1
        if i == start:
            self.error("Expecting field name")
            self._sel_fail(s, start)
        name = s[start:i]
        r = self._get_field(name)
        if r is None:
            self.display_fields(False, True)
            self.warn(" ")
            self.error("Unrecognised selection field: %s" % name)
            self._sel_fail(s, start)
        num, implicit = r
        f = self._field_def(num, implicit)
        if implicit and f.uncomparable:
            self.display_fields(False, True)
            self.warn(" ")
            self.error("Selection field is uncomparable: %s." % name)
            self._sel_fail(s, start)
        flags, j = self._tok_op(_OP_CMP, s, i, 0)
        if not flags:
            self.display_selection_help()
            self.error("Unrecognised comparison operator: %s" % s[i:])
            self._sel_fail(s, start)
        if flags & _F_REGEX:
            j = _skip_space(s, j)
            if j >= len(s):
                self.error("Regular expression expected for selection field %s" % f.id)
                self._sel_fail(s, start)
            endc = {"(": ")", "{": "}", "[": "]", '"': '"', "'": "'"}.get(s[j])
            value, j = self._tok_string(s, j + 1 if endc else j, endc, f, "regex")
            if value is None:
                self._sel_fail(s, start)
            vkind = STR
        else:
            if flags & _F_NUMBER and f.kind not in (NUM, SIZ, PCT, TIM):
                self.display_selection_help()
                self.error("Operator can be used only with number, size, time or percent fields: %s" % name)
                self._sel_fail(s, start)
            elif not (flags & _F_NUMBER) and flags & _F_TIME and f.kind != TIM:
                self.display_selection_help()
                self.error("Operator can be used only with time fields: %s" % name)
                self._sel_fail(s, start)
            j = _skip_space(s, j)
            if f.kind == STR:
                endc = s[j] if j < len(s) and s[j] in "\"'" else None
                value, j = self._tok_string(s, j + 1 if endc else j, endc, f, "string")
                if value is None:
                    self._sel_fail(s, start)
                vkind = STR
            elif f.kind in (NUM, SIZ, PCT):
                k = j
                dot = False
                while k < len(s) and (s[k].isdigit() or (s[k] == "." and not dot)):
                    if s[k] == ".":
                        dot = True
                    k += 1
                if k == j:
                    self.error("Failed to parse numeric value for selection field %s." % f.id)
                    self._sel_fail(s, start)
                digits = s[j:k]
                if k < len(s) and s[k] == "%":
                    self.error("Found percent value but numeric value expected for "
                               "selection field %s." % f.id)
                    self._sel_fail(s, start)
                # dm_units_to_factor: one unit character right after the number
                if k < len(s) and s[k] in "hHrRbBsSkmgtpeKMGTPE" and f.kind == NUM:
                    self.error("Found size unit specifier but numeric value expected "
                               "for selection field %s." % f.id)
                    self._sel_fail(s, start)
                m = re.match(r"\d*", digits)
                value = int(m.group(0)) if m.group(0) else 0
                j = k
                vkind = NUM
            else:
                self.error("Failed to parse %s value for selection field %s." % (f.kind, f.id))
                self._sel_fail(s, start)
        # bind to the displayed (or a new hidden) field
        props = None
        for p in self.props:
            if p.implicit == implicit and p.num == num:
                props = p
                break
        if props is None:
            props = self._add_field(num, implicit, hidden=True)
            self.report_types |= f.type
        kind_ok = (vkind == STR and f.kind == STR) or (vkind == NUM and f.kind in (NUM, SIZ, PCT))
        if not kind_ok:
            self.error("dm_report: incompatible comparison type for selection field %s" % f.id)
            raise ReportError("selection")
        if flags & _F_REGEX:
            try:
                value = re.compile(value)
            except re.error:
                self.error("dm_report: failed to create regex matcher for selection field %s"
                           % f.id)
                raise ReportError("selection")
        return _Sel("item", props, flags, value), _skip_space(s, j)

    def _tok_string(self, s, i, endc, f, what):
        if endc:
            k = s.find(endc, i)
            if k < 0:
                self.error("Missing end quote.")
                self.error("Failed to parse %s value for selection field %s."
                           % (what, f.id))
                return None, i
            return s[i:k], k + 1
        k = i
        while k < len(s):
            flags, _ = self._tok_op(_OP_LOG, s, k, _AND | _OR | _PE)
            if flags or s[k] == " ":
                break
            k += 1
        return s[i:k], k

    def _check(self, node, values):
        if node.kind == "item":
            r = True
            for p, rep, sv in values:
                if p is not node.props:
                    continue
                if not self._compare(node, sv):
                    r = False
        elif node.kind == "or":
            r = any(self._check(c, values) for c in node.children)
        else:
            r = all(self._check(c, values) for c in node.children)
        return (not r) if node.negate else r

    @staticmethod
    def _compare(node, sv):
        fl = node.flags
        if fl & _F_REGEX:
            m = node.value.search(sv if isinstance(sv, str) else str(sv)) is not None
            return not m if fl & _F_NOT else m
        v = node.value
        if isinstance(sv, str):
            if fl == _F_EQ:
                return sv == v
            if fl == _F_NOT | _F_EQ:
                return sv != v
            return False
        base = fl & ~_F_TIME
        if base == _F_EQ:
            return sv == v
        if base == _F_NOT | _F_EQ:
            return sv != v
        if base == _F_NUMBER | _F_GT:
            return sv > v
        if base == _F_NUMBER | _F_GT | _F_EQ:
            return sv >= v
        if base == _F_NUMBER | _F_LT:
            return sv < v
        if base == _F_NUMBER | _F_LT | _F_EQ:
            return sv <= v
        return False

    # ------------------------------------------------------------------ objects
    @property
    def visible(self):
        return [p for p in self.props if not p.hidden]

    def field_ids(self):
        return [p.field.id for p in self.visible]

    def add(self, get, do_output=True):
        """Add one object.  ``get(type_id)`` returns the data object for an object
        type (or the object itself).  Returns whether the object is selected."""
        if self.already_reported:
            return True
        row = _Row()
        for p in self.props:
            f = p.field
            if p.implicit:
                if f.id == "selected":
                    row.has_sel_field = True
                    row.values.append([p, None, None])
                    continue
                row.values.append([p, "", 0])
                continue
            try:
                v = f.fn(get(f.type))
            except FieldError:
                self.error("_do_report_object: report function failed for field %s" % f.id)
                raise
            if isinstance(v, tuple):
                rep, sv = v
            elif f.kind == STR:
                rep = sv = "" if v is None else str(v)
            else:
                v = int(v)
                rep = str(v)
                sv = v & 0xFFFFFFFFFFFFFFFF
            row.values.append([p, rep, sv])
        if self.selection is not None:
            row.selected = self._check(self.selection, row.values)
        for rv in row.values:
            if rv[1] is None:
                rv[1] = "1" if row.selected else "0"
                rv[2] = 1 if row.selected else 0
        if not row.selected and not row.has_sel_field:
            return False
        if not row.selected:
            sel_props = [rv[0] for rv in row.values if rv[0].implicit and rv[0].field.id == "selected"]
            if sel_props and sel_props[0].hidden:
                return False
        if do_output:
            self.rows.append(row)
        return row.selected

    def is_empty(self):
        return not self.rows

    # ------------------------------------------------------------------ output
    def _recalculate(self):
        for row in self.rows:
            if row.has_sel_field or row.selected:
                for p, rep, _sv in row.values:
                    if len(rep) > p.width:
                        p.width = len(rep)

    def _reset(self):
        for p in self.props:
            p.width = p.initial_width

    def headings(self):
        """Heading line(s) (dm_report_column_headings), or [] in rows mode."""
        if self.flags & COLUMNS_AS_ROWS:
            return []
        self._recalculate()
        return self._heading_lines()

    def _heading_lines(self):
        self.headings_printed = True
        if not self.flags & HEADINGS:
            return []
        parts = []
        vis = self.visible
        last = self.props[-1] if self.props else None
        for p in vis:
            h = p.field.heading
            if self.flags & ALIGNED:
                parts.append(("%-*.*s" % (p.width, p.width, h)))
            else:
                parts.append(h)
            if p is not last:
                parts.append(self.separator)
        return ["".join(parts)]

    def _sort(self):
        if not self.keys_count:
            return
        keys = sorted((p for p in self.props if p.sort_key), key=lambda p: p.sort_posn)
        import functools

        def cmp(a, b):
            for p in keys:
                va = next(rv[2] for rv in a.values if rv[0] is p)
                vb = next(rv[2] for rv in b.values if rv[0] is p)
                if isinstance(va, str):
                    va = va.encode("utf-8", "surrogateescape")
                    vb = vb.encode("utf-8", "surrogateescape")
                if va == vb:
                    continue
                if not p.descending:
                    return 1 if va > vb else -1
                return 1 if va < vb else -1
            return 0
        self.rows.sort(key=functools.cmp_to_key(cmp))

    def _field_text(self, p, rep):
        out = []
        if self.flags & FIELD_NAME_PREFIX:
            out.append(self.output_prefix + p.field.id.upper() + "=")
            if not self.flags & UNQUOTED:
                out.append("'")
        if not self.flags & ALIGNED:
            out.append(rep)
        else:
            num = p.field.kind in (NUM, SIZ)
            if num:
                out.append("%*.*s" % (p.width, p.width, rep))
            else:
                out.append("%-*.*s" % (p.width, p.width, rep))
        if self.flags & FIELD_NAME_PREFIX and not self.flags & UNQUOTED:
            out.append("'")
        return "".join(out)

    def output(self):
        """dm_report_output: the lines for the buffered rows (then cleared)."""
        if not self.rows:
            return []
        self._recalculate()
        if self.sort_required:
            self._sort()
        lines = []
        if self.flags & COLUMNS_AS_ROWS:
            for p in self.props:
                if p.hidden:
                    continue
                parts = []
                if self.flags & HEADINGS:
                    parts.append(p.field.heading)
                    parts.append(self.separator)
                vals = []
                for row in self.rows:
                    for rv in row.values:
                        if rv[0] is p:
                            vals.append(self._field_text(p, rv[1]))
                            break
                parts.append(self.separator.join(vals))
                lines.append("".join(parts))
        else:
            if not self.headings_printed:
                lines.extend(self._heading_lines())
            for row in self.rows:
                if not (row.has_sel_field or row.selected):
                    continue
                parts = []
                for p, rep, _sv in row.values:
                    if p.hidden:
                        continue
                    parts.append(self._field_text(p, rep))
                lines.append(self.separator.join(parts))
        self.rows = []
        self._reset()
        return lines

    def rows_as_dicts(self):
        """The buffered rows as [{field_id: report_string}] (for --json)."""
        self._recalculate()
        if self.sort_required:
            self._sort()
        out = []
        for row in self.rows:
            if not (row.has_sel_field or row.selected):
                continue
            d = {}
            for p, rep, sv in row.values:
                if p.hidden:
                    continue
                if p.field.kind == NUM and rep.lstrip("-").isdigit():
                    d[p.field.id] = int(rep)
                else:
                    d[p.field.id] = rep
            out.append(d)
        self.rows = []
        self._reset()
        return out
