from google.protobuf import field_mask_pb2 as _field_mask_pb2
from protos.loom.v1 import network_pb2 as _network_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateSecurityGroupRequest(_message.Message):
    __slots__ = ("security_group",)
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    security_group: _resources_pb2.SecurityGroup
    def __init__(self, security_group: _Optional[_Union[_resources_pb2.SecurityGroup, _Mapping]] = ...) -> None: ...

class UpdateSecurityGroupRequest(_message.Message):
    __slots__ = ("security_group", "update_mask")
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    security_group: _resources_pb2.SecurityGroup
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, security_group: _Optional[_Union[_resources_pb2.SecurityGroup, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListSecurityGroupsRequest(_message.Message):
    __slots__ = ("name", "project_id", "limit", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    project_id: str
    limit: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSecurityGroupsResponse(_message.Message):
    __slots__ = ("security_groups", "revision", "next_page_token")
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    security_groups: _containers.RepeatedCompositeFieldContainer[_resources_pb2.SecurityGroup]
    revision: int
    next_page_token: str
    def __init__(self, security_groups: _Optional[_Iterable[_Union[_resources_pb2.SecurityGroup, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSecurityGroupRuleRequest(_message.Message):
    __slots__ = ("security_group_rule",)
    SECURITY_GROUP_RULE_FIELD_NUMBER: _ClassVar[int]
    security_group_rule: _resources_pb2.SecurityGroupRule
    def __init__(self, security_group_rule: _Optional[_Union[_resources_pb2.SecurityGroupRule, _Mapping]] = ...) -> None: ...

class ListSecurityGroupRulesRequest(_message.Message):
    __slots__ = ("security_group_id", "direction", "project_id", "remote_group_id", "limit", "page_token")
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    security_group_id: str
    direction: str
    project_id: str
    remote_group_id: str
    limit: int
    page_token: str
    def __init__(self, security_group_id: _Optional[str] = ..., direction: _Optional[str] = ..., project_id: _Optional[str] = ..., remote_group_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSecurityGroupRulesResponse(_message.Message):
    __slots__ = ("security_group_rules", "revision", "next_page_token")
    SECURITY_GROUP_RULES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    security_group_rules: _containers.RepeatedCompositeFieldContainer[_resources_pb2.SecurityGroupRule]
    revision: int
    next_page_token: str
    def __init__(self, security_group_rules: _Optional[_Iterable[_Union[_resources_pb2.SecurityGroupRule, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...
