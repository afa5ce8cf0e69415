<?php

// examples/laravel/app/Http/Controllers/PollgateTokenController.php — the renewUrl of
// <x-pollgate.watch>: when a short-lived token has expired the gateway answers 401, and the page asks here
// (with its session) for a new one, then starts watching again.
//   cookie mode: sets a fresh cookie, 204 No Content;
//   header mode: {"token": "...", "expires_in": 300}.

namespace App\Http\Controllers;

use App\Http\Middleware\IssuePollgateCookie;
use App\Support\PollgateToken;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Http\Response;

final class PollgateTokenController
{
    public function __invoke(Request $request): JsonResponse|Response
    {
        $userId = (int) $request->user()->getAuthIdentifier();
        $ttl = (int) config('pollgate.ttl', 300);

        if (config('pollgate.credential') === 'cookie') {
            return response()->noContent()
                ->withCookie(IssuePollgateCookie::cookie($userId))
                ->header('Cache-Control', 'no-store');
        }

        return response()
            ->json(['token' => PollgateToken::mint($userId, $ttl), 'expires_in' => $ttl])
            ->header('Cache-Control', 'no-store');
    }
}
