"""moto server, with AWS's documented behaviour where moto 5.2.5 deviates from it in ways the tests depend on.

Started by scripts/local-stack.sh instead of the `moto_server` entry point; the arguments are moto_server's.

1. ECR BatchDeleteImage with an image id naming both `imageTag` and `imageDigest`: ECR removes that tag only (the image
goes only if it was its last tag) when the tag points at that digest, and answers the failure
`ImageTagDoesNotMatchDigest` when it points elsewhere. It is the only conditional delete ECR offers, and
ecr-warden relies on it to never remove a tag that moved. moto deletes the whole image with every tag instead,
and never answers `ImageTagDoesNotMatchDigest`. Production code is written against ECR; this keeps the local
stack from deleting images ECR would keep.

2. DynamoDB requests are applied one at a time. moto's TransactWriteItems deep-copies the table while other
request threads change it and fails with `RuntimeError: dictionary changed size during iteration` (an HTML 500)
under concurrent writers; DynamoDB isolates a transaction from concurrent writes. moto's copy of the whole table
(once per item of the transaction) also makes a transaction cost grow with the table: the transaction here keeps
a copy of only the items it writes, and puts those back if it is cancelled, as moto's rollback would.

Every other call goes to moto unchanged.
"""

import copy
import functools
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TransactionCanceledException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.ecr import models
from moto.server import main

_batch_delete_image = models.ECRBackend.batch_delete_image


def _failure(image_id, code, reason):
    return {"imageId": dict(image_id), "failureCode": code, "failureReason": reason}


def batch_delete_image(self, repository_name, registry_id=None, image_ids=None):
    both = [i for i in image_ids or [] if "imageTag" in i and "imageDigest" in i]
    if not both or repository_name not in self.repositories:
        return _batch_delete_image(self, repository_name, registry_id, image_ids)
    images = self.repositories[repository_name].images
    failures, by_tag = [], []
    for image_id in both:
        holder = next((i for i in images if image_id["imageTag"] in i.image_tags), None)
        if holder is None:
            failures.append(_failure(image_id, "ImageNotFound", "Requested image not found"))
        elif holder.get_image_digest() != image_id["imageDigest"]:
            failures.append(_failure(image_id, "ImageTagDoesNotMatchDigest",
                                     "Invalid request parameters: given tag does not map to the given digest"))
        else:
            by_tag.append({"imageTag": image_id["imageTag"]})
    rest = [i for i in image_ids if not ("imageTag" in i and "imageDigest" in i)] + by_tag
    response = {"imageIds": [], "failures": []}
    if rest:
        response = _batch_delete_image(self, repository_name, registry_id, rest)
    response["failures"] = list(response.get("failures", [])) + failures
    return response


models.ECRBackend.batch_delete_image = batch_delete_image

_dynamodb = threading.RLock()


class _NoTableCopies:
    """Stands in for the `copy` module inside moto's DynamoDB backend: tables are not copied (see above)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, dynamodb_models.Table) else copy.deepcopy(value, memo)


dynamodb_models.copy = _NoTableCopies
_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(backend, op_type, op):
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    before = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        if op.get("TableName") in self.tables and op_type in {"Put", "Delete", "Update"}:
            key = _key_of(self, op_type, op)
            current = self.get_item(op["TableName"], key)
            before.append((op["TableName"], key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    try:
        return _transact_write_items(self, transact_items)
    except (TransactionCanceledException, MultipleTransactionsException, MockValidationException):
        for table_name, key, attributes in reversed(before):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


DynamoDBBackend.transact_write_items = transact_write_items


def _one_at_a_time(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _dynamodb:
            return method(*args, **kwargs)

    return locked


for _name, _method in list(vars(DynamoDBBackend).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _one_at_a_time(_method))

if __name__ == "__main__":
    sys.exit(main())
