from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from command_api.deps import Auth, Store
from command_api.passwords import burn_time_like_a_check, hash_password, verify_password
from command_api.responses import set_position
from command_api.schemas import TokenPublic, UserCreate, UserLogin, UserPublic
from common.auth import issue_token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def register(body: UserCreate, store: Store, settings: Auth, response: Response) -> UserPublic:
    saved = store.register_user(body.email, hash_password(body.password, settings.BCRYPT_ROUNDS))
    set_position(response, saved.position)
    return UserPublic.of(saved.aggregate)


@router.post("/login", response_model=TokenPublic)
def login(body: UserLogin, store: Store, settings: Auth) -> TokenPublic:
    user = store.find_user_by_email(body.email)
    if user is None:
        burn_time_like_a_check(body.password)
    if user is None or not verify_password(body.password, user.password_hash):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid email or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, expires_in = issue_token(user.id, settings)
    return TokenPublic(access_token=token, expires_in=expires_in)
