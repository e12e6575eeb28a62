from gateway.api.encoding import encoded
from gateway.api.schemas import RunResponse


def test_encoded_response_is_the_models_json_once() -> None:
    model = RunResponse(outputs=[{"output_type": "stream", "name": "stdout", "text": "é\n"}], status="ok")
    response = encoded(model, status_code=201)
    assert response.status_code == 201 and response.media_type == "application/json"
    assert response.body == model.model_dump_json().encode()
    assert dict(response.headers)["content-type"] == "application/json"
