"""The SecurityGroupService over gRPC: a thin layer from messages to the security-group resources and back."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from controller.api import watch as watching
from controller.api.convert import SECURITY_KINDS, Presenter, create_fields, update_changes
from controller.api.network_api import NetworkApi
from controller.api.status import maps_errors
from protos.loom.v1 import network_pb2, resources_pb2, security_pb2, security_pb2_grpc


class SecurityGroupServicer(security_pb2_grpc.SecurityGroupServiceServicer):
    """Requests to ``NetworkApi.security_groups`` / ``security_group_rules``, ``ApiError`` to statuses."""

    def __init__(self, api: NetworkApi, presenter: Presenter) -> None:
        self.api = api
        self.groups = api.security_groups
        self.rules = api.security_group_rules
        self.present = presenter

    # -------------------------------------------------------------- groups

    @maps_errors
    def CreateSecurityGroup(
        self, request: security_pb2.CreateSecurityGroupRequest, context: grpc.ServicerContext
    ) -> resources_pb2.SecurityGroup:
        return self.present.security_group(self.groups.create(create_fields(request.security_group)))

    @maps_errors
    def GetSecurityGroup(
        self, request: network_pb2.GetRequest, context: grpc.ServicerContext
    ) -> resources_pb2.SecurityGroup:
        return self.present.security_group(self.groups.get(request.id))

    @maps_errors
    def ListSecurityGroups(
        self, request: security_pb2.ListSecurityGroupsRequest, context: grpc.ServicerContext
    ) -> security_pb2.ListSecurityGroupsResponse:
        filters = {"name": request.name, "project_id": request.project_id}
        page = self.groups.list(filters, request.limit, request.page_token)
        return security_pb2.ListSecurityGroupsResponse(
            security_groups=[self.present.security_group(g) for g in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateSecurityGroup(
        self, request: security_pb2.UpdateSecurityGroupRequest, context: grpc.ServicerContext
    ) -> resources_pb2.SecurityGroup:
        changes = update_changes(request.security_group, request.update_mask)
        return self.present.security_group(self.groups.update(request.security_group.id, changes))

    @maps_errors
    def DeleteSecurityGroup(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.groups.delete(request.id))

    # --------------------------------------------------------------- rules

    @maps_errors
    def CreateSecurityGroupRule(
        self, request: security_pb2.CreateSecurityGroupRuleRequest, context: grpc.ServicerContext
    ) -> resources_pb2.SecurityGroupRule:
        return self.present.security_group_rule(self.rules.create(create_fields(request.security_group_rule)))

    @maps_errors
    def GetSecurityGroupRule(
        self, request: network_pb2.GetRequest, context: grpc.ServicerContext
    ) -> resources_pb2.SecurityGroupRule:
        return self.present.security_group_rule(self.rules.get(request.id))

    @maps_errors
    def ListSecurityGroupRules(
        self, request: security_pb2.ListSecurityGroupRulesRequest, context: grpc.ServicerContext
    ) -> security_pb2.ListSecurityGroupRulesResponse:
        filters = {
            "security_group_id": request.security_group_id,
            "direction": request.direction,
            "project_id": request.project_id,
            "remote_group_id": request.remote_group_id,
        }
        page = self.rules.list(filters, request.limit, request.page_token)
        return security_pb2.ListSecurityGroupRulesResponse(
            security_group_rules=[self.present.security_group_rule(r) for r in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def DeleteSecurityGroupRule(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.rules.delete(request.id))

    # --------------------------------------------------------------- watch

    def Watch(
        self, request: network_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[network_pb2.WatchEvent]:
        return watching.watch(self.api.store, self.present, request, context, SECURITY_KINDS)
