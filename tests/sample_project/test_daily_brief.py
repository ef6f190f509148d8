"""A daily cue across the spring-forward change, tested with the cueapi-lite fixtures.

The clock starts on Friday 2027-03-12 at noon in New York; the cue fires at 09:00 local
time, which is 14:00 UTC on Saturday and 13:00 UTC on Sunday, after clocks go forward.
"""

import pytest
from cueapi import CueAPI


@pytest.fixture
def cueapi_lite_start():
    return "2027-03-12T12:00:00-05:00"


def test_a_daily_cue_fires_at_nine_local_time_across_the_dst_change(
    cueapi_lite_server, cueapi_lite_key, webhook_receiver
):
    webhook_receiver.answer_outcome(success=True, result="brief sent", external_id="mail:1")
    with CueAPI(cueapi_lite_key.api_key, base_url=cueapi_lite_server.base_url) as client:
        cue = client.cues.create(
            name="morning-brief",
            cron="0 9 * * *",
            timezone="America/New_York",
            callback=webhook_receiver.url + "/brief",
            payload={"task": "daily_brief"},
        )

        cueapi_lite_server.advance(days=1)
        [saturday] = webhook_receiver.assert_received(1)  # signature checked
        cueapi_lite_server.advance(days=1)
        saturday, sunday = webhook_receiver.assert_received(2)

        assert saturday.scheduled_for == "2027-03-13T14:00:00+00:00"
        assert sunday.scheduled_for == "2027-03-14T13:00:00+00:00"
        assert sunday.payload == {"task": "daily_brief"}
        assert sunday.headers["x-cueapi-cue-id"] == cue.id
        execution = client.executions.get(sunday.execution_id)
        assert execution["status"] == "success"
        assert execution["outcome_state"] == "reported_success"
        assert execution["outcome"]["result"] == "brief sent"


async def test_the_same_in_process_without_sockets(cueapi_lite_inprocess):
    server = cueapi_lite_inprocess
    key = await server.mint_key("me@example.com")
    server.webhooks.answer_outcome(success=False, error="mailbox full")
    async with server.client(key.api_key) as api:
        created = await api.post(
            "/v1/cues",
            json={
                "name": "morning-brief",
                "cron": "0 9 * * *",
                "timezone": "America/New_York",
                "callback": "http://agent.internal/brief",
                "payload": {"task": "daily_brief"},
            },
        )
        assert created.status_code == 201
        await server.advance(days=2)
        saturday, sunday = server.webhooks.assert_received(2)
        assert [saturday.scheduled_for, sunday.scheduled_for] == [
            "2027-03-13T14:00:00+00:00",
            "2027-03-14T13:00:00+00:00",
        ]
        execution = (await api.get(f"/v1/executions/{sunday.execution_id}")).json()
        assert execution["outcome_state"] == "reported_failure"
        assert execution["outcome"]["error"] == "mailbox full"
