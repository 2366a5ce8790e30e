"""auth: social sign-in (Kakao, Google, Naver), token refresh and logout (API.md "auth")."""
